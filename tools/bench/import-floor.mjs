// The SpamAssassin import against the least a node process does with the same messages
// (BENCHMARKS.md, "SpamAssassin import: where the time goes, session 51"): one mode a run, its
// CPU split by thread, so alternating runs compare on a shared machine where wall time is noise.
//
//   node tools/bench/import-floor.mjs MODE MBOX DIR      (after npm run build)
//
// MODE: `import` (the library importMail into a new store DIR, open + import + close, as the
// bench's import step), `parse` (readMbox alone: every message split out with its date and flags,
// nothing stored), `floor` (a bare loop: 1 MiB reads, split at `\nFrom `, each message BLAKE3-hashed
// as mailstore hashes, a 48-byte frame and the body written into one file of DIR with synchronous
// vectored writes, one fdatasync at the end), `setup` (everything a mode does before its timed part:
// its modules loaded and the mbox read once; for subtracting under callgrind). Prints one JSON
// line: wall ms, and CPU ms (10 ms ticks) of the main thread, of the threads that were there
// before the timed part (V8's platform threads: its optimising compiler and GC helpers) and of
// the rest (libuv's pool, LevelDB's thread, workers).
import { closeSync, fdatasyncSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, rmSync, writevSync } from 'node:fs';
import { join } from 'node:path';

const [mode, mbox, dir] = process.argv.slice(2);
if (!['import', 'parse', 'floor', 'setup'].includes(mode) || !mbox || !dir) {
  console.error('usage: node tools/bench/import-floor.mjs import|parse|floor|setup MBOX DIR');
  process.exit(2);
}
const dist = new URL('../../dist/src/', import.meta.url);
const { favourMainThread } = await import(new URL('thread-priority.js', dist));
const { hashBytes } = await import(new URL('hash/blake3.js', dist));
const { readMbox } = await import(new URL('formats/mbox.js', dist));
const { nodeFileSystem } = await import(new URL('fs/node-fs.js', dist));
const { Store } = await import(new URL('store/store.js', dist));
const { importMail } = await import(new URL('import/importer.js', dist));
favourMainThread(); // as the bench's measurement processes and the CLI
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
readFileSync(mbox); // warm page cache, as the bench's import step

/** CPU ms of each thread of this process, by thread id. */
function threadTicks() {
  const ticks = new Map();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const fields = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1].split(' ');
      ticks.set(tid, (Number(fields[11]) + Number(fields[12])) * 10);
    } catch { /* the thread ended meanwhile */ }
  }
  return ticks;
}

async function importStore() {
  const store = await Store.open(join(dir, 'store'), { create: true });
  const summary = await importMail(store, mbox, { mailbox: 'INBOX', format: 'mbox' });
  await store.close();
  return summary.imported;
}

async function parse() {
  let messages = 0;
  for await (const message of readMbox(nodeFileSystem, mbox, {})) messages += message.bytes.length >= 0 ? 1 : 0;
  return messages;
}

function floor() {
  const chunkBytes = 1 << 20;
  const input = openSync(mbox, 'r');
  const output = openSync(join(dir, 'pack'), 'wx');
  let position = 0, written = 0, messages = 0, parts = [], partBytes = 0, carry = Buffer.alloc(0);
  const flush = () => {
    if (parts.length > 0) written += writevSync(output, parts, written);
    parts = [];
    partBytes = 0;
  };
  const add = (body) => {
    const frame = Buffer.allocUnsafe(48);
    hashBytes(body).copy(frame, 0);
    frame.writeUInt32BE(body.length, 32);
    parts.push(frame, body);
    partBytes += frame.length + body.length;
    messages++;
    if (partBytes >= chunkBytes || parts.length >= 1000) flush();
  };
  for (;;) {
    const chunk = Buffer.allocUnsafe(chunkBytes);
    const bytesRead = readSync(input, chunk, 0, chunkBytes, position);
    if (bytesRead === 0) break;
    position += bytesRead;
    const buffer = carry.length > 0 ? Buffer.concat([carry, chunk.subarray(0, bytesRead)]) : chunk.subarray(0, bytesRead);
    // the first chunk starts with the first From_ line; a carry starts at a message's first byte
    let start = carry.length === 0 && buffer.indexOf('From ') === 0 ? buffer.indexOf(10) + 1 : 0;
    let kept = start;
    for (;;) {
      const next = buffer.indexOf('\nFrom ', start);
      const lineEnd = next < 0 ? -1 : buffer.indexOf(10, next + 1);
      if (lineEnd < 0) break; // the next From_ line is not whole in this buffer: carried on
      add(buffer.subarray(start, next));
      start = kept = lineEnd + 1;
    }
    carry = buffer.subarray(kept);
    if (written > 2 * position + chunkBytes) throw new Error('the floor wrote more than it read: a bug in this script');
  }
  if (carry.length > 0) add(carry);
  flush();
  fdatasyncSync(output);
  closeSync(output);
  closeSync(input);
  return messages;
}

const before = threadTicks();
const started = performance.now();
const messages = mode === 'import' ? await importStore() : mode === 'parse' ? await parse() : mode === 'floor' ? floor() : 0;
const wallMs = performance.now() - started;
const after = threadTicks();
const main = String(process.pid);
let platformMs = 0, restMs = 0;
for (const [tid, ticks] of after) {
  if (tid === main) continue;
  if (before.has(tid)) platformMs += ticks - before.get(tid);
  else restMs += ticks;
}
console.log(JSON.stringify({ mode, messages, wallMs: Math.round(wallMs), mainMs: after.get(main) - before.get(main), platformMs, restMs }));
rmSync(dir, { recursive: true, force: true });
