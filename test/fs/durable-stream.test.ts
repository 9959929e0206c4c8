// DurableStream (src/fs/durable.ts): a file appended as it is produced and named at the end (a
// backup's data file). The same save sequence as writeFileDurable, checked the same way: the
// order of the calls, a fault at each step leaves no file and no temp file, and every crash state
// holds either nothing under the name or the whole file.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DurableStream } from '../../src/fs/durable.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { FaultFileSystem, type OpKind } from '../sim/faultfs.js';
import { tmpDir } from '../helpers/tmp.js';

const PARTS = [Buffer.from('header|'), Buffer.from('x'.repeat(300_000)), Buffer.from('|record two'), Buffer.from('|three')];
const WHOLE = Buffer.concat(PARTS);

async function recordingSetup() {
  const dir = tmpDir('dstream');
  const fs = new FaultFileSystem({ seed: 11 });
  await fs.startRecording(dir);
  return { dir, fs };
}

async function writeAll(stream: DurableStream, name = 'final'): Promise<boolean> {
  stream.append(PARTS.slice(0, 2));
  stream.append(PARTS.slice(2));
  return stream.finish(name);
}

describe('DurableStream', () => {
  it('appends in order, then length check, fsync, rename to the name, fsync of the directory', async () => {
    const { dir, fs } = await recordingSetup();
    const stream = await DurableStream.open(fs, dir, 'data');
    expect(await writeAll(stream)).toBe(true);
    const kinds = fs.ops().map((op) => op.kind);
    expect(kinds[0]).toBe('create');
    expect(kinds.slice(-3)).toEqual(['sync', 'rename', 'syncDir']);
    expect(kinds.slice(1, -3).every((kind) => kind === 'write')).toBe(true);
    expect(stream.bytes).toBe(WHOLE.length);
    expect(readFileSync(join(dir, 'final')).equals(WHOLE)).toBe(true);
    expect(readdirSync(dir)).toEqual(['final']);
  });

  it('a name already there is kept (content-named files hold the same bytes): false, and the temp file is gone', async () => {
    const dir = tmpDir('dstream');
    writeFileSync(join(dir, 'final'), WHOLE);
    const stream = await DurableStream.open(nodeFileSystem, dir, 'data');
    expect(await writeAll(stream)).toBe(false);
    expect(readdirSync(dir)).toEqual(['final']);
  });

  it.each([
    ['write', 'ENOSPC'], ['sync', 'EIO'], ['rename', 'EACCES'],
  ] as [OpKind, 'ENOSPC' | 'EIO' | 'EACCES'][])('a %s that fails (%s): finish rejects with it, nothing under the name, no temp file', async (kind, code) => {
    const { dir, fs } = await recordingSetup();
    fs.injectAt((op) => op.kind === kind, code);
    const stream = await DurableStream.open(fs, dir, 'data');
    await expect(writeAll(stream)).rejects.toMatchObject({ code });
    expect(fs.firedFaults()).toHaveLength(1);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('abort removes the temp file, after the queued appends', async () => {
    const { dir, fs } = await recordingSetup();
    const stream = await DurableStream.open(fs, dir, 'data');
    stream.append(PARTS);
    await stream.abort();
    expect(readdirSync(dir)).toEqual([]);
  });

  it('every crash state: the name is absent or holds the whole file', async () => {
    const { dir, fs } = await recordingSetup();
    await writeAll(await DurableStream.open(fs, dir, 'data'));
    let states = 0;
    await fs.forEachCrash(async (crashed, report) => {
      states++;
      const names = readdirSync(crashed).filter((name) => !name.endsWith('.tmp'));
      if (names.includes('final')) expect(readFileSync(join(crashed, 'final')).equals(WHOLE), report.reproduce).toBe(true);
      else expect(names, report.reproduce).toEqual([]);
    }, { count: 40, modes: ['all-lost', 'random', 'all-kept', 'data-lost'] });
    expect(states).toBe(40);
  });
});
