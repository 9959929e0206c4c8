// Issue 10 #1: an acknowledged message must hold exactly the bytes that were hashed, while the
// caller may reuse its buffer as soon as append returns. Two ways: (A) copy the bytes at the call
// and hash the copy; (B) keep the caller's buffer and hash what was written, i.e. read the record
// back after the write and hash it again (the hash at the call is still needed for dedup). This
// measures what each adds per message, in alternating rounds (medians), and then whole appends
// with (A) through a Store (64 concurrent writers, group commit) to show its share.
//
//   node dist/tools/bench/append-copy.js [--rounds 7] [--dir DIR]
import { closeSync, fsyncSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { hashBytes } from '../../src/hash/blake3.js';
import { Store } from '../../src/store/store.js';

const args = process.argv.slice(2);
const flag = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const rounds = Number(flag('--rounds', '7'));
const dir = mkdtempSync(join(flag('--dir', tmpdir()), 'append-copy-'));

const shapes = [
  { label: '4 KB', bytes: 4096, count: 20_000, storeCount: 20_000 },
  { label: '1 MB', bytes: 1024 * 1024, count: 2_000, storeCount: 300 },
];

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/** (A): a private copy of each message (Buffer.from allocates and copies). */
function copyRound(messages: Buffer[], count: number): number {
  const start = performance.now();
  let keep = 0;
  for (let i = 0; i < count; i++) keep += Buffer.from(messages[i % messages.length]).length;
  if (keep < 0) throw new Error('unreachable');
  return performance.now() - start;
}

/** (B): read the written record back (from the page cache, as right after a write) and hash it. */
function readBackRound(fd: number, size: number, slots: number, count: number): number {
  const scratch = Buffer.allocUnsafe(size);
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    readSync(fd, scratch, 0, size, (i % slots) * size);
    hashBytes(scratch);
  }
  return performance.now() - start;
}

async function storeRun(messages: Buffer[], count: number): Promise<number> {
  const root = join(dir, `store-${messages[0].length}-${Date.now()}`);
  const store = await Store.open(root, { create: true });
  await store.createMailbox('INBOX');
  let next = 0;
  const start = performance.now();
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (next < count) {
      const i = next++;
      const body = messages[i % messages.length];
      body.writeUInt32BE(i, 0); // distinct messages: no dedup
      await store.append('INBOX', body);
    }
  }));
  const ms = performance.now() - start;
  await store.close();
  rmSync(root, { recursive: true, force: true });
  return ms;
}

for (const shape of shapes) {
  const slots = Math.max(1, Math.floor((64 * 1024 * 1024) / shape.bytes));
  const messages = Array.from({ length: Math.min(slots, 256) }, () => randomBytes(shape.bytes));
  const file = join(dir, `records-${shape.bytes}`);
  const fd = openSync(file, 'w+');
  for (let s = 0; s < slots; s++) writeSync(fd, messages[s % messages.length]);
  fsyncSync(fd);
  const copy: number[] = [];
  const readBack: number[] = [];
  for (let r = 0; r < rounds; r++) {
    copy.push(copyRound(messages, shape.count));
    readBack.push(readBackRound(fd, shape.bytes, slots, shape.count));
  }
  closeSync(fd);
  const perMessage = (ms: number) => (ms * 1000) / shape.count;
  const total = await storeRun(messages, shape.storeCount);
  process.stdout.write(`${JSON.stringify({
    size: shape.label, messages: shape.count, rounds,
    copy_us_per_message: +perMessage(median(copy)).toFixed(2),
    read_back_and_hash_us_per_message: +perMessage(median(readBack)).toFixed(2),
    store_appends: shape.storeCount, store_append_us_per_message_with_copy: +((total * 1000) / shape.storeCount).toFixed(1),
  })}\n`);
}
rmSync(dir, { recursive: true, force: true });
