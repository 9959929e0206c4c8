// A snapshot is written and verified through buffers of a bounded size whatever the index holds
// (issue 13: a daemon's first automatic snapshot held ~80 MB of dead buffers, and glibc kept the
// heap they grew). Counted as the distinct buffers the file system was handed, not as RSS: every
// write comes from the writer's one chunk buffer (an entry bigger than a chunk gets one of its
// own), every read of a verification goes into one buffer, a rebuild's load is handed entries in
// arrays handed again; and what was written reads back exact.
import { afterEach, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import type { FileHandle, FileSystem } from '../../src/fs/filesystem.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { encodeValue } from '../../src/index/codec.js';
import { keys } from '../../src/keys/index-keys.js';
import { limits } from '../../src/limits.js';
import { readSnapshotFile, writeSnapshotFile } from '../../src/store/snapshot-file.js';
import { codeOf } from '../helpers/errors.js';
import { tmpDir } from '../helpers/tmp.js';

const tunable = limits as { snapshotWriteChunkBytes: number; snapshotRecordBytes: number; scanChunkBytes: number; snapshotReadChunkBytes: number };
const saved = { ...tunable };
afterEach(() => { Object.assign(limits, saved); });

/** The file system, noting the memory (ArrayBuffers) and the largest piece each write and read used. */
function counting(): { fs: FileSystem; writes: Set<ArrayBufferLike>; reads: Set<ArrayBufferLike>; largestWrite: () => number } {
  const writes = new Set<ArrayBufferLike>(), reads = new Set<ArrayBufferLike>();
  let largest = 0;
  const wrap = (h: FileHandle): FileHandle => ({
    path: h.path,
    read: (buffer, offset, length, position) => { reads.add(buffer.buffer); return h.read(buffer, offset, length, position); },
    write: (data, position) => { writes.add(data.buffer); largest = Math.max(largest, data.length); return h.write(data, position); },
    writev: (parts, position) => {
      for (const p of parts) writes.add(p.buffer);
      largest = Math.max(largest, parts.reduce((n, p) => n + p.length, 0));
      return h.writev(parts, position);
    },
    writevDurable: (parts, position) => h.writevDurable(parts, position),
    sync: () => h.sync(),
    truncate: (length) => h.truncate(length),
    size: () => h.size(),
    stat: () => h.stat(),
    close: () => h.close(),
  });
  const fs = Object.create(nodeFileSystem) as FileSystem;
  fs.open = async (path, mode) => wrap(await nodeFileSystem.open(path, mode));
  return { fs, writes, reads, largestWrite: () => largest };
}

/** `n` blob entries in key order, in batches as LevelDB's iterator gives them; one value of `bigBytes` in the middle. */
function entries(n: number, bigBytes: number): [Buffer, Buffer][] {
  const out: [Buffer, Buffer][] = [];
  for (let i = 0; i < n; i++) {
    const hash = Buffer.alloc(32);
    hash.writeUInt32BE(i, 0);
    const key = keys.blob(hash);
    out.push([key, encodeValue(key, { p: i % 7, o: i * 100, l: 5000 + i, r: 1, pad: i === n >> 1 ? 'x'.repeat(bigBytes) : '' })]);
  }
  return out;
}

async function* batches(all: [Buffer, Buffer][]): AsyncGenerator<[Buffer, Buffer][]> {
  for (let i = 0; i < all.length; i += 1000) yield all.slice(i, i + 1000).map(([k, v]) => [Buffer.from(k), Buffer.from(v)]);
}

describe('snapshot memory', () => {
  it('writes from one chunk buffer and verifies through one read buffer, many chunks over (an entry past a chunk: one buffer more), and reads back exact', async () => {
    Object.assign(limits, { snapshotWriteChunkBytes: 64 * 1024, snapshotRecordBytes: 8 * 1024, scanChunkBytes: 32 * 1024, snapshotReadChunkBytes: 32 * 1024 });
    const root = tmpDir();
    const storeId = Buffer.alloc(16, 3);
    const all = entries(8000, 100 * 1024);
    const { fs, writes, reads, largestWrite } = counting();
    const info = await writeSnapshotFile(fs, root, storeId, 42, batches(all));
    expect(info.bytes).toBeGreaterThan(6 * 64 * 1024); // many chunks: the bound is what is asserted
    expect(info.entries).toBe(all.length);
    expect(writes.size).toBeLessThanOrEqual(2);
    expect(largestWrite()).toBeLessThanOrEqual(24 + 1 + 6 + 200 * 1024);

    const verified = await readSnapshotFile(fs, info.path, info.name, storeId);
    expect(verified).toMatchObject({ seq: 42, entries: all.length, records: info.records, blobs: all.length });
    expect(reads.size).toBeLessThanOrEqual(2);

    // a rebuild's reader keeps what it is handed (no reuse): every entry back, exact, in order
    const back: [Buffer, Buffer][] = [];
    const view = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength); // the very bytes handed, not a copy
    let buffersHanded = 0; // plain views: a Buffer's subarray costs ~2.5x a view's making, twice an entry (issue 16)
    await readSnapshotFile(nodeFileSystem, info.path, info.name, storeId, { op: () => undefined, entry: (k, v) => { buffersHanded += Number(Buffer.isBuffer(k)) + Number(Buffer.isBuffer(v)); back.push([view(k), view(v)]); } });
    expect(buffersHanded).toBe(0);
    expect(back.length).toBe(all.length);
    expect(back.every(([k, v], i) => k.equals(all[i]![0]) && v.equals(all[i]![1]))).toBe(true);

    // a sink that keeps no views (a rebuild's load: LevelDB copies each entry) reads through one
    // buffer as the verification does, and still gets every entry, exact, in order
    const counted = counting();
    const copied: [Buffer, Buffer][] = [];
    const handed = new Set<Uint8Array>();
    await readSnapshotFile(counted.fs, info.path, info.name, storeId, { op: () => undefined, entry: (k, v) => { handed.add(k).add(v); copied.push([Buffer.from(k), Buffer.from(v)]); }, keepsNoViews: true });
    expect(counted.reads.size).toBeLessThanOrEqual(2);
    expect(copied.length).toBe(all.length);
    expect(copied.every(([k, v], i) => k.equals(all[i]![0]) && v.equals(all[i]![1]))).toBe(true);
    // in arrays handed again (one a length: the keys' one, the values' few, the big value's view),
    // not two views made an entry (issue 16; failed before: 16,000)
    expect(handed.size).toBeLessThan(50);
  });

  it('the verification that reuses its buffer still finds damage far into the file: CORRUPT', async () => {
    Object.assign(limits, { snapshotWriteChunkBytes: 64 * 1024, snapshotRecordBytes: 8 * 1024, scanChunkBytes: 32 * 1024, snapshotReadChunkBytes: 32 * 1024 });
    const root = tmpDir();
    const storeId = Buffer.alloc(16, 4);
    const info = await writeSnapshotFile(nodeFileSystem, root, storeId, 7, batches(entries(6000, 0)));
    const bytes = readFileSync(info.path);
    bytes[Math.floor(bytes.length * 0.8)] ^= 0x10;
    writeFileSync(info.path, bytes);
    expect(await codeOf(readSnapshotFile(nodeFileSystem, info.path, info.name, storeId))).toBe('CORRUPT');
  });
});
