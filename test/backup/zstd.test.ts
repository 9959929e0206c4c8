// zstd records (repository version 3, src/backup/zstd.ts): an encrypted repository round-trips;
// without the native binary (MAILSTORE_ZSTD=off) a backup stores Brotli with one clear note and a
// zstd repository still restores and checks (fzstd); a record whose frame could decode to more than a
// message may hold, or that is cut, is CORRUPT before anything is allocated for it.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/backup/backup.js';
import { DATA_HEADER_BYTES, RECORD_HEADER_BYTES, decodeRecord, sealRecord } from '../../src/backup/format.js';
import { readFileSync, readdirSync } from 'node:fs';
import { zstdAvailable, zstdCompress, zstdCompressStreaming, zstdDecompress, zstdOneShotModule, zstdOutputBound } from '../../src/backup/zstd.js';
import { decompress } from 'fzstd';
import { hashBytes } from '../../src/hash/blake3.js';
import { limits } from '../../src/limits.js';
import { Store } from '../../src/store/store.js';
import { expectingSuccess, requireBuilt, run as spawned, tempDir, type RunOptions } from '../cli/helpers.js';
import * as here from '../cli/in-process.js';

// MAILSTORE_ZSTD is read once a process: a command line run with it set is a process of its own;
// the others (the stores, backups and fetches of the default, as this process has it) run in this
// process (in-process.ts, a sample checked against the spawned command)
const run = (args: string[], options: RunOptions = {}) => (options.env?.MAILSTORE_ZSTD !== undefined ? spawned : here.run)(args, options);
const { ok, json } = expectingSuccess(run);
import { tmpDir } from '../helpers/tmp.js';
import { expectCode, expectRestoresExactly, fill, openRepo, recordFlags, source } from './helpers.js';

/** A record body of zstd flag around `frame` (unencrypted: the blob id is the message hash). */
function zstdRecord(id: Buffer, frame: Buffer): Buffer {
  const [header, stored] = sealRecord(id, Buffer.alloc(frame.length * 2), frame, 'zstd', undefined);
  return Buffer.concat([header!, stored!]);
}

/** Whether each zstd record's frame says its content size (frame header descriptor, RFC 8878 3.1.1.1.1), data file by data file. */
function framesSayingSize(repo: string): Map<string, boolean[]> {
  const files = new Map<string, boolean[]>();
  for (const name of readdirSync(join(repo, 'data')).filter((n) => !n.startsWith('.'))) {
    const bytes = readFileSync(join(repo, 'data', name));
    const says: boolean[] = [];
    for (let at = DATA_HEADER_BYTES; at < bytes.length; at += RECORD_HEADER_BYTES + bytes.readUInt32BE(at + 40)) {
      const descriptor = bytes[at + RECORD_HEADER_BYTES + 4]!;
      says.push((descriptor >> 6) !== 0 || ((descriptor >> 5) & 1) === 1);
    }
    files.set(name, says);
  }
  return files;
}

/** Letters `from`..`to`-1 of `words` repeated, appended to mailbox M through the CLI. */
async function appendLetters(store: string, words: string, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i++) await ok(['--store', store, 'append', 'M', '-'], { input: `Subject: ${i}\r\n\r\n${words.repeat(400)}${i}\r\n` });
}

/** A new store (CLI, needs the build) with mailbox M and its first letters. */
async function storeOfLetters(prefix: string, words: string, from: number, to: number): Promise<{ dir: string; store: string }> {
  requireBuilt();
  const dir = tempDir(prefix);
  const store = join(dir, 's');
  await ok(['--store', store, 'init']);
  await ok(['--store', store, 'mailbox', 'create', 'M']);
  await appendLetters(store, words, from, to);
  return { dir, store };
}

describe('zstd records', () => {
  it('the binary loads here (the bench and CI run with it)', () => {
    expect(zstdAvailable).toBe(true);
  });

  it('the one-shot compressor (zstd-napi) loads here and round-trips exact bytes; its frames and the streaming binding\'s both decode, native and fzstd', async () => {
    expect(zstdOneShotModule).toMatch(/zstd-napi/);
    const letter = Buffer.from('Subject: hello\r\n\r\nwords of a letter, again and again\r\n'.repeat(5000));
    for (const bytes of [Buffer.alloc(0), Buffer.from('x'), randomBytes(70_000), letter, Buffer.concat([letter, randomBytes(300_000), letter])]) {
      const frame = await zstdCompress(bytes);
      expect(frame.readUInt32LE(0)).toBe(0xfd2fb528);
      expect(zstdOutputBound(frame)).toBeGreaterThanOrEqual(bytes.length);
      expect((await zstdDecompress(frame)).equals(bytes)).toBe(true);
      expect(Buffer.from(decompress(frame)).equals(bytes)).toBe(true);
      const older = await zstdCompressStreaming(bytes);
      expect((await zstdDecompress(older)).equals(bytes)).toBe(true);
    }
    // one shot: the frame says its content size (the streaming binding's frames do not)
    const frame = await zstdCompress(letter);
    expect(frame[4]! >> 6).not.toBe(0);
    expect((await zstdCompressStreaming(letter))[4]! >> 6).toBe(0);
  });

  it('a repository written by the streaming binding (MAILSTORE_ZSTD=streaming) restores and checks, and takes one-shot records beside its own', { timeout: 90_000 }, async () => {
    const { dir, store } = await storeOfLetters('mailstore-backup-zstd-old-', 'an older letter ', 0, 3);
    const streaming = { env: { MAILSTORE_ZSTD: 'streaming' } };
    expect((await run(['--store', store, 'backup', '--repo', join(dir, 'repo'), '--json'], streaming)).code).toBe(0);
    expect(new Set(recordFlags(join(dir, 'repo')))).toEqual(new Set([4]));
    const older = framesSayingSize(join(dir, 'repo'));
    expect([...older.values()].flat()).toEqual([false, false, false]); // the streaming binding's frames
    await appendLetters(store, 'a newer letter ', 3, 6);
    expect((await run(['--store', store, 'backup', '--repo', join(dir, 'repo'), '--json'])).code).toBe(0);
    const newer = [...framesSayingSize(join(dir, 'repo'))].filter(([name]) => !older.has(name)).flatMap(([, says]) => says);
    expect(newer).toEqual([true, true, true]); // one shot, beside them
    expect((await run(['backup', 'check', '--repo', join(dir, 'repo'), '--read-data'])).code).toBe(0);
    expect(await json(['restore', '--repo', join(dir, 'repo'), '--to', join(dir, 'r')])).toMatchObject({ messages: 6 });
    for (const uid of ['1', '3', '4', '6']) {
      const original = await ok(['--store', store, 'fetch', 'M', uid]);
      expect(original).toMatch(/(an older|a newer) letter/);
      expect(await ok(['--store', join(dir, 'r'), 'fetch', 'M', uid])).toBe(original);
    }
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
    const { dir, store } = await storeOfLetters('mailstore-backup-zstd-', 'words of a letter ', 0, 4);
    const off = { env: { MAILSTORE_ZSTD: 'off' } };
    // a new repository without the binary: version 3, Brotli records, the note on stderr, exit 0
    const fallback = await run(['--store', store, 'backup', '--repo', join(dir, 'brotli'), '--json'], off);
    expect(fallback.code).toBe(0);
    expect(fallback.stderr.toString()).toMatch(/zstd compression is not available \(MAILSTORE_ZSTD=off\): new blobs are stored with Brotli/);
    expect(new Set(recordFlags(join(dir, 'brotli')))).toEqual(new Set([2]));
    // a zstd repository written with the binary, restored and checked without it (fzstd)
    const quiet = await run(['--store', store, 'backup', '--repo', join(dir, 'zstd'), '--json']);
    expect(quiet.code).toBe(0);
    expect(quiet.stderr.toString()).not.toMatch(/zstd compression/); // (a same-disk warning may name the repository's path, .../zstd)
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
    // a bomb: RLE blocks of 128 KiB each, 4 bytes apiece, past the message limit (and past the size the snapshot records)
    const blocks = Math.ceil(limits.messageBytesSettingMax / (128 * 1024)) + 1;
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
    const small = bomb.subarray(0, 6 + 4 * 4);
    small[6 + 3 * 4] |= 1; // four blocks, 512 KiB: under the limit, over the message the snapshot records
    expect(() => zstdOutputBound(small, message.length)).toThrow(/more than/);
    await expectCode(decodeRecord(zstdRecord(id, small), id, undefined, undefined, 'data/x', message.length), 'CORRUPT');
    // cut short, and with bytes after the frame
    await expectCode(decodeRecord(zstdRecord(id, frame.subarray(0, frame.length - 3)), id, undefined, undefined, 'data/x'), 'CORRUPT');
    await expectCode(decodeRecord(zstdRecord(id, Buffer.concat([frame, Buffer.from([1, 2, 3, 4, 5])])), id, undefined, undefined, 'data/x'), 'CORRUPT');
    // a flipped byte inside the blocks: never wrong bytes (the hash check, when the decoder does not refuse it first)
    const flipped = Buffer.from(frame);
    flipped[flipped.length - 5] ^= 0xff;
    await expectCode(decodeRecord(zstdRecord(id, flipped), id, undefined, undefined, 'data/x'), 'CORRUPT');
  });

  it('a frame whose header says a content size its blocks cannot hold is CORRUPT before either decoder allocates it', async () => {
    // 17 bytes: a header saying 1 GB, then one raw block of one byte (fzstd allocated the 1 GB and returned the byte)
    const liar = Buffer.alloc(17);
    liar.writeUInt32LE(0xfd2fb528, 0);
    liar[4] = (3 << 6) | (1 << 5); // an 8-byte content size, single segment
    liar.writeBigUInt64LE(1_000_000_000n, 5);
    liar.writeUIntLE(1 | (1 << 3), 13, 3); // last, raw, 1 byte
    liar[16] = 0x61;
    expect(() => zstdOutputBound(liar)).toThrow(/content size|window/);
    const id = hashBytes(Buffer.from('a'));
    const before = process.memoryUsage().rss;
    await expectCode(decodeRecord(zstdRecord(id, liar), id, undefined, undefined, 'data/x'), 'CORRUPT');
    expect(process.memoryUsage().rss - before).toBeLessThan(256 * 1024 * 1024);
    // the same header telling the truth decodes
    liar.writeBigUInt64LE(1n, 5);
    expect((await zstdDecompress(liar)).toString()).toBe('a');
    // 10 bytes asking for a 1 GiB window (fzstd allocated it): refused, as libzstd refuses past 128 MiB
    const wide = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 20 << 3, 0x09, 0x00, 0x00, 0x61]);
    expect(() => zstdOutputBound(wide)).toThrow(/window/);
    await expectCode(decodeRecord(zstdRecord(id, wide), id, undefined, undefined, 'data/x'), 'CORRUPT');
    wide[5] = 0x48; // a 512 KiB window decodes
    expect((await zstdDecompress(wide)).toString()).toBe('a');
  });
});
