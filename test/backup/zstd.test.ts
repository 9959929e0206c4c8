// zstd records (repository version 3, src/backup/zstd.ts): an encrypted repository round-trips;
// without the native binary (MAILSTORE_ZSTD=off) a backup stores Brotli with one clear note and a
// zstd repository still restores and checks (fzstd); a record whose frame could decode to more than a
// message may hold, or that is cut, is CORRUPT before anything is allocated for it.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/backup/backup.js';
import { decodeRecord, sealRecord } from '../../src/backup/format.js';
import { zstdAvailable, zstdCompress, zstdOutputBound } from '../../src/backup/zstd.js';
import { hashBytes } from '../../src/hash/blake3.js';
import { limits } from '../../src/limits.js';
import { Store } from '../../src/store/store.js';
import { json, ok, requireBuilt, run, tempDir } from '../cli/helpers.js';
import { tmpDir } from '../helpers/tmp.js';
import { expectCode, expectRestoresExactly, fill, openRepo, recordFlags, source } from './helpers.js';

/** A record body of zstd flag around `frame` (unencrypted: the blob id is the message hash). */
function zstdRecord(id: Buffer, frame: Buffer): Buffer {
  const [header, stored] = sealRecord(id, Buffer.alloc(frame.length * 2), frame, 'zstd', undefined);
  return Buffer.concat([header!, stored!]);
}

describe('zstd records', () => {
  it('the binary loads here (the bench and CI run with it)', () => {
    expect(zstdAvailable).toBe(true);
  });

  it('an encrypted version-3 repository stores zstd records and restores exactly; a wrong key is refused', async () => {
    const dir = tmpDir('bkz');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('INBOX');
    await fill(store, 'INBOX', 10, 1, 30_000);
    const secret = randomBytes(32);
    const repo = await openRepo(join(dir, 'repo'), secret);
    expect(repo.codec).toBe('zstd');
    await runBackup(source(store), repo);
    expect(new Set(recordFlags(join(dir, 'repo')))).toEqual(new Set([4]));
    await expectRestoresExactly(store, repo, join(dir, 'r'));
    await expectCode(openRepo(join(dir, 'repo'), randomBytes(32)), 'INVALID');
  });

  it('without the binary: Brotli records and one note; a zstd repository still restores and checks; with it again both read back', { timeout: 90_000 }, async () => {
    requireBuilt();
    const dir = tempDir('mailstore-backup-zstd-');
    const store = join(dir, 's');
    await ok(['--store', store, 'init']);
    await ok(['--store', store, 'mailbox', 'create', 'M']);
    for (let i = 0; i < 4; i++) await ok(['--store', store, 'append', 'M', '-'], { input: `Subject: ${i}\r\n\r\n${'words of a letter '.repeat(400)}${i}\r\n` });
    const off = { env: { MAILSTORE_ZSTD: 'off' } };
    // a new repository without the binary: version 3, Brotli records, the note on stderr, exit 0
    const fallback = await run(['--store', store, 'backup', '--repo', join(dir, 'brotli'), '--json'], off);
    expect(fallback.code).toBe(0);
    expect(fallback.stderr.toString()).toMatch(/zstd compression is not available \(MAILSTORE_ZSTD=off\): new blobs are stored with Brotli/);
    expect(new Set(recordFlags(join(dir, 'brotli')))).toEqual(new Set([2]));
    // a zstd repository written with the binary, restored and checked without it (fzstd)
    const quiet = await run(['--store', store, 'backup', '--repo', join(dir, 'zstd'), '--json']);
    expect(quiet.code).toBe(0);
    expect(quiet.stderr.toString()).not.toMatch(/zstd/);
    expect(new Set(recordFlags(join(dir, 'zstd')))).toEqual(new Set([4]));
    expect((await run(['backup', 'check', '--repo', join(dir, 'zstd'), '--read-data'], off)).code).toBe(0);
    const restoredOff = await json(['restore', '--repo', join(dir, 'zstd'), '--to', join(dir, 'r1')], off);
    const restored = await json(['restore', '--repo', join(dir, 'brotli'), '--to', join(dir, 'r2')]);
    expect(restoredOff).toMatchObject({ messages: 4 });
    expect(restored).toMatchObject({ messages: 4 });
    for (const uid of ['1', '4']) {
      const original = await ok(['--store', store, 'fetch', 'M', uid]);
      expect(original).toContain('words of a letter');
      expect(await ok(['--store', join(dir, 'r1'), 'fetch', 'M', uid])).toBe(original);
      expect(await ok(['--store', join(dir, 'r2'), 'fetch', 'M', uid])).toBe(original);
    }
  });

  it('a frame that could decode past the message limit, or is cut or padded, is CORRUPT (bounded before decoding)', async () => {
    const message = Buffer.from('a letter, compressed well '.repeat(2000));
    const frame = await zstdCompress(message);
    expect(zstdOutputBound(frame)).toBeGreaterThanOrEqual(message.length);
    const id = hashBytes(message);
    expect((await decodeRecord(zstdRecord(id, frame), id, undefined, undefined, 'data/x')).equals(message)).toBe(true);
    // a bomb: RLE blocks of 128 KiB each, 4 bytes apiece, past the message limit
    const blocks = Math.ceil(limits.messageBytesMax / (128 * 1024)) + 1;
    const bomb = Buffer.alloc(6 + blocks * 4);
    bomb.writeUInt32LE(0xfd2fb528, 0);
    bomb[4] = 0x00; // no content size, not single-segment
    bomb[5] = 0x48; // window descriptor
    for (let b = 0; b < blocks; b++) {
      const header = ((128 * 1024) << 3) | (1 << 1) | (b === blocks - 1 ? 1 : 0); // RLE
      bomb.writeUIntLE(header, 6 + b * 4, 3);
      bomb[6 + b * 4 + 3] = 0x61;
    }
    expect(() => zstdOutputBound(bomb)).toThrow(/more than/);
    await expectCode(decodeRecord(zstdRecord(id, bomb), id, undefined, undefined, 'data/x'), 'CORRUPT');
    // cut short, and with bytes after the frame
    await expectCode(decodeRecord(zstdRecord(id, frame.subarray(0, frame.length - 3)), id, undefined, undefined, 'data/x'), 'CORRUPT');
    await expectCode(decodeRecord(zstdRecord(id, Buffer.concat([frame, Buffer.from([1, 2, 3, 4, 5])])), id, undefined, undefined, 'data/x'), 'CORRUPT');
    // a flipped byte inside the blocks: never wrong bytes (the hash check, when the decoder does not refuse it first)
    const flipped = Buffer.from(frame);
    flipped[flipped.length - 5] ^= 0xff;
    await expectCode(decodeRecord(zstdRecord(id, flipped), id, undefined, undefined, 'data/x'), 'CORRUPT');
  });
});
