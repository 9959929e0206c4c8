// The I/O floor of a compaction's shape on this machine (issue 12's churn row), no store logic:
// the live records of the packs copied into a new file (one pread and one write per run of
// adjacent records, through one reused buffer, synchronous calls: no thread-pool hops), that file
// fdatasynced and its directory fsynced, then the old pack files unlinked and the directory
// fsynced again. It runs on copies of the packs, made and synced before the clock starts, so the
// store is untouched; what it leaves out against a real compaction: reading the index, checking
// each record's header and hash, the journal record and the index batch.
import { closeSync, copyFileSync, fdatasyncSync, fsyncSync, mkdirSync, openSync, readSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../store/store.js';
import type { IndexDb } from '../index/index-db.js';
import type { BlobRecord } from '../store/records.js';
import { keys } from '../keys/index-keys.js';
import { SPACE, prefixEnd } from '../keys/tuple.js';
import { RECORD_HEADER_BYTES, packFileName } from '../blob/pack-format.js';

export interface CompactionFloor {
  seconds: number;
  /** record bytes copied (header + body) */
  bytesCopied: number;
  records: number;
  /** preads (one a run of adjacent records, at most `runBytesMax`) */
  runs: number;
  /** bytes of the pack files unlinked */
  packBytes: number;
}

interface Live { pack: number; offset: number; bytes: number }

/** The live blob records of a closed store's packs (B entries with references), in pack and offset order. */
async function liveRecords(root: string): Promise<Live[]> {
  const store = await Store.open(root);
  try {
    const db = (store as unknown as { db: IndexDb }).db;
    const out: Live[] = [];
    const range = { gte: keys.space(SPACE.blob), lt: prefixEnd(keys.space(SPACE.blob)) };
    for await (const batch of db.entryBatches<BlobRecord>(range, 4096)) {
      for (const [, blob] of batch) if (blob.r > 0 && blob.p >= 0) out.push({ pack: blob.p, offset: blob.o, bytes: RECORD_HEADER_BYTES + blob.l });
    }
    return out.sort((a, b) => a.pack - b.pack || a.offset - b.offset);
  } finally {
    await store.close();
  }
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try { fsyncSync(fd); } finally { closeSync(fd); }
}

/** Measures the floor in `scratch` (made and removed here) for the store at `root` (closed). */
export async function compactionFloor(root: string, scratch: string, runBytesMax = 4 * 2 ** 20): Promise<CompactionFloor> {
  const live = await liveRecords(root);
  const packs = [...new Set(live.map((r) => r.pack))];
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  const copies = new Map<number, string>();
  let packBytes = 0;
  for (const pack of packs) { // untimed: the copies stand for the store's packs
    const copy = join(scratch, packFileName(pack));
    copyFileSync(join(root, 'packs', packFileName(pack)), copy);
    const fd = openSync(copy, 'r+');
    try { fdatasyncSync(fd); } finally { closeSync(fd); }
    copies.set(pack, copy);
    packBytes += statSync(copy).size;
  }
  fsyncDir(scratch);
  const buffer = Buffer.allocUnsafe(runBytesMax);
  let bytesCopied = 0;
  let runs = 0;
  const started = performance.now();
  const fds = new Map([...copies].map(([pack, copy]) => [pack, openSync(copy, 'r')]));
  const out = openSync(join(scratch, 'new.pack'), 'w');
  let at = 0;
  let i = 0;
  while (i < live.length) {
    const first = live[i]!;
    let end = first.offset + first.bytes;
    let j = i + 1;
    while (j < live.length && live[j]!.pack === first.pack && live[j]!.offset === end && end + live[j]!.bytes - first.offset <= runBytesMax) end += live[j++]!.bytes;
    const length = end - first.offset;
    const view = length <= buffer.length ? buffer.subarray(0, length) : Buffer.allocUnsafe(length);
    readSync(fds.get(first.pack)!, view, 0, length, first.offset);
    writeSync(out, view, 0, length, at);
    at += length;
    bytesCopied += length;
    runs++;
    i = j;
  }
  fdatasyncSync(out);
  closeSync(out);
  fsyncDir(scratch);
  for (const fd of fds.values()) closeSync(fd);
  for (const copy of copies.values()) unlinkSync(copy);
  fsyncDir(scratch);
  const seconds = (performance.now() - started) / 1000;
  rmSync(scratch, { recursive: true, force: true });
  return { seconds, bytesCopied, records: live.length, runs, packBytes };
}
