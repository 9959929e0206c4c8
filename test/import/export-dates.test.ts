// Internal dates a Maildir export cannot keep: the file's mtime is the date, and a file system
// clamps a time past its range silently (ext4 with 128-byte inodes stops at 2038-01-19, with 256
// at 2446). The export reads each date back and names the ones that did not stay (exit 1 in the CLI).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { exportMailbox } from '../../src/import/exporter.js';
import { readMaildir } from '../../src/formats/maildir.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';

/** A small ext4 with 128-byte inodes (file times up to 2038) loop-mounted at the returned directory, or why not. */
function smallExt4(): { mnt: string; image: string } | string {
  if (process.getuid?.() !== 0) return 'needs root (mount -o loop)';
  const dir = mkdtempSync(join(tmpdir(), 'ext4-128-')); // not tmpDir: its cleanup after each test would meet the mount
  const image = join(dir, 'disk.img');
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  for (const [tool, ...args] of [['truncate', '-s', '16M', image], ['mkfs.ext4', '-q', '-F', '-I', '128', image], ['mount', '-o', 'loop', image, mnt]]) {
    const r = spawnSync(tool!, args, { encoding: 'utf8' });
    if (r.status !== 0) return `${tool} failed: ${(r.stderr || r.error?.message || '').split('\n')[0]}`;
  }
  return { mnt, image };
}

const disk = smallExt4();
if (typeof disk === 'string') console.log(`export-dates test skipped: ${disk}`);
afterAll(() => {
  if (typeof disk === 'string') return;
  spawnSync('umount', [disk.mnt]);
  rmSync(join(disk.mnt, '..'), { recursive: true, force: true });
});

describe.skipIf(typeof disk === 'string')('a Maildir export onto a file system that cannot hold the date', () => {
  it('dates past 2038 on ext4 with 128-byte inodes are named in datesNotKept with the date a reader will take; the others are kept (to the second) and not named', async () => {
    const store = await Store.open(join(tmpDir('export-dates'), 's'), { create: true });
    await store.createMailbox('M');
    const dates = ['2026-12-06T03:00:00.371Z', '2106-02-07T06:28:16.000Z', '9999-12-31T23:59:59.000Z', '1970-01-01T00:00:00.000Z'].map((d) => new Date(d));
    for (const [i, internalDate] of dates.entries()) await store.append('M', Buffer.from(`Subject: ${i}\r\n\r\nbody\r\n`), { internalDate });
    const out = join((disk as { mnt: string }).mnt, 'out');
    const summary = await exportMailbox(store, 'M', { format: 'maildir', out, fs: nodeFileSystem });
    await store.close();
    expect(summary.exported).toBe(4);
    const clamped = '2038-01-19T03:14:07.000Z';
    expect(summary.datesNotKept).toEqual([
      { mailbox: 'M', uid: 2, internalDate: '2106-02-07T06:28:16.000Z', kept: clamped },
      { mailbox: 'M', uid: 3, internalDate: '9999-12-31T23:59:59.000Z', kept: clamped },
    ]);
    const read: string[] = [];
    for await (const m of readMaildir(nodeFileSystem, out)) read.push(m.internalDate!.toISOString());
    // whole seconds on this file system: the .371 goes, and is not named (IMAP's INTERNALDATE has no more)
    expect(read.sort()).toEqual(['1970-01-01T00:00:00.000Z', '2026-12-06T03:00:00.000Z', clamped, clamped]);
  });
});
