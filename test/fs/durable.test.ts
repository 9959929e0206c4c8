// The one durable save sequence (src/fs/durable.ts): temp file, write, length check, fsync, rename
// over the target, fsync the directory. Checked as FaultFS records it, with a fault at each step,
// and against every crash state the sequence can leave: the target is always the old file or the
// new one, whole, and the new one once the call resolved.
import { readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureDir, fileTimeStamp, writeFileDurable } from '../../src/fs/durable.js';
import type { FileHandle, OpenMode } from '../../src/fs/filesystem.js';
import { NodeFileSystem, nodeFileSystem } from '../../src/fs/node-fs.js';
import { FaultFileSystem, type OpKind } from '../sim/faultfs.js';
import { tmpDir } from '../helpers/tmp.js';

const OLD = Buffer.from('old contents, complete\n');
const NEW = Buffer.from(`new contents, longer than the old ones: ${'n'.repeat(2000)}\n`);

async function recordingSetup() {
  const dir = tmpDir('durable');
  const target = join(dir, 'cursor.json');
  writeFileSync(target, OLD);
  const fs = new FaultFileSystem({ seed: 7 });
  await fs.startRecording(dir);
  return { dir, target, fs };
}

/** A file system whose writes drop their last byte without saying so (a lying device or a bug). */
class DropsLastByte extends NodeFileSystem {
  override async open(path: string, mode: OpenMode): Promise<FileHandle> {
    const handle = await super.open(path, mode);
    return {
      path,
      read: (buffer, offset, length, position) => handle.read(buffer, offset, length, position),
      write: (data, position) => handle.write(data.subarray(0, data.length - 1), position),
      writev: (parts, position) => handle.write(Buffer.concat(parts).subarray(0, -1), position),
      sync: () => handle.sync(),
      truncate: (length) => handle.truncate(length),
      size: () => handle.size(),
      close: () => handle.close(),
    };
  }
}

describe('writeFileDurable', () => {
  it('runs exclusive temp create, write, fsync, rename over the target, fsync of the directory, in that order', async () => {
    const { dir, target, fs } = await recordingSetup();
    await writeFileDurable(fs, target, NEW);
    const ops = fs.ops();
    expect(ops.map((op) => op.kind)).toEqual(['create', 'write', 'sync', 'rename', 'syncDir']);
    const temp = ops[0].path;
    expect(temp).not.toBe(target);
    expect(join(temp, '..')).toBe(dir); // same directory: the rename is atomic
    expect(ops.slice(1, 3).every((op) => op.path === temp)).toBe(true);
    expect(ops[3]).toMatchObject({ path: temp, to: target });
    expect(ops[4].path).toBe(dir);
    expect(readFileSync(target).equals(NEW)).toBe(true);
    expect(readdirSync(dir)).toEqual(['cursor.json']);
  });

  it.each([
    ['create', 'ENOSPC'], ['write', 'ENOSPC'], ['sync', 'EIO'], ['rename', 'EACCES'],
  ] as [OpKind, 'ENOSPC' | 'EIO' | 'EACCES'][])('a %s that fails (%s) rejects and leaves the old file intact, and no temp file', async (kind, code) => {
    const { dir, target, fs } = await recordingSetup();
    fs.injectAt((op) => op.kind === kind, code);
    await expect(writeFileDurable(fs, target, NEW)).rejects.toMatchObject({ code });
    expect(fs.firedFaults()).toHaveLength(1);
    expect(readFileSync(target).equals(OLD)).toBe(true);
    expect(readdirSync(dir)).toEqual(['cursor.json']);
  });

  it('never follows a link planted at a temp name, and replaces a stale temp file of the same pid', async () => {
    const { dir, target } = await recordingSetup();
    const outside = join(tmpDir('outside'), 'secret');
    writeFileSync(outside, 'secret');
    for (let n = 1; n <= 50; n++) symlinkSync(outside, join(dir, `.cursor.json.${process.pid}.${n}.tmp`));
    await writeFileDurable(nodeFileSystem, target, NEW);
    expect(readFileSync(outside, 'utf8')).toBe('secret');
    expect(readFileSync(target).equals(NEW)).toBe(true);
  });

  it('a short write (disk full part way) rejects and leaves the old file intact', async () => {
    const { target, fs } = await recordingSetup();
    fs.injectAt((op) => op.kind === 'write', { kind: 'shortWrite', bytes: 100 });
    await expect(writeFileDurable(fs, target, NEW)).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(readFileSync(target).equals(OLD)).toBe(true);
  });

  it('a failed directory fsync rejects, and the target holds the new file whole (the rename happened)', async () => {
    const { target, fs } = await recordingSetup();
    fs.injectAt((op) => op.kind === 'syncDir', 'EIO');
    await expect(writeFileDurable(fs, target, NEW)).rejects.toMatchObject({ code: 'EIO' });
    expect(readFileSync(target).equals(NEW)).toBe(true);
  });

  it('refuses (EIO, before fsync and rename) when the file is shorter than what was written', async () => {
    const { dir, target } = await recordingSetup();
    const fs = new FaultFileSystem({ inner: new DropsLastByte() });
    await fs.startRecording(dir);
    const error = await writeFileDurable(fs, target, NEW).catch((e) => e);
    expect(error).toMatchObject({ code: 'EIO' });
    expect(String(error.message)).toMatch(/length check failed/);
    expect(fs.ops().map((op) => op.kind)).not.toContain('sync');
    expect(fs.ops().map((op) => op.kind)).not.toContain('rename');
    expect(readFileSync(target).equals(OLD)).toBe(true);
  });

  it('every crash state holds the old file or the new one whole; after the call resolved, only the new one', async () => {
    const { target, fs } = await recordingSetup();
    await writeFileDurable(fs, target, NEW);
    const last = fs.logLength;
    let states = 0;
    await fs.forEachCrash(async (crashDir, report) => {
      states++;
      const got = readFileSync(join(crashDir, 'cursor.json'));
      expect(got.equals(OLD) || got.equals(NEW), report.reproduce).toBe(true);
      if (report.afterOp === last) expect(got.equals(NEW), report.reproduce).toBe(true);
    }, { modes: ['all-lost', 'random', 'all-kept'], count: 3 * (last + 1) * 4 });
    expect(states).toBe(3 * (last + 1) * 4);
  });
});

describe('ensureDir', () => {
  it('creates a missing directory and fsyncs its parent; an existing one is left alone', async () => {
    const dir = tmpDir('durable');
    const fs = new FaultFileSystem();
    await fs.startRecording(dir);
    expect(await ensureDir(fs, join(dir, 'quarantine'))).toBe(true);
    expect(fs.ops().map((op) => `${op.kind} ${op.path}`)).toEqual([`mkdir ${join(dir, 'quarantine')}`, `syncDir ${dir}`]);
    expect(await ensureDir(fs, join(dir, 'quarantine'))).toBe(false);
    expect(fs.logLength).toBe(2);
  });

  it('a failed mkdir rejects with its code and creates nothing', async () => {
    const dir = tmpDir('durable');
    const fs = new FaultFileSystem();
    fs.failAll('EACCES', { ops: ['mkdir'] });
    await expect(ensureDir(fs, join(dir, 'quarantine'))).rejects.toMatchObject({ code: 'EACCES' });
    expect(readdirSync(dir)).toEqual([]);
  });
});


describe('fileTimeStamp', () => {
  it('is the ISO time with no character a file name on any file system refuses, and sorts as the time', () => {
    const earlier = fileTimeStamp(new Date('2026-12-06T09:05:07.004Z'));
    const later = fileTimeStamp(new Date('2026-12-06T10:00:00.000Z'));
    expect(earlier).toBe('2026-12-06T09-05-07-004Z');
    expect(earlier < later).toBe(true);
    expect(fileTimeStamp()).toMatch(/^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z$/);
  });
});
