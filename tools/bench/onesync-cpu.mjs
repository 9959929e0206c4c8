// Where a lone writer's delivery spends CPU, beside the floor it is held to (BENCHMARKS.md, "One-sync,
// session 52"): the deliver step's messages appended one at a time by one writer, or with --floor
// the floor-sync-one-zeroed loop of src/bench/measure/sync-shapes.ts over the same messages, with the
// CPU of the main thread (/proc/thread-self/schedstat) and of the process a delivery. On a loaded
// machine wall time says little; these, and instruction counts, still do.
//
//   node tools/bench/onesync-cpu.mjs DIR --list LIST.TXT [--messages N] [--warmup W] [--inline BYTES] [--small] [--floor] [--callgrind]
//
// DIR: a new store (or the floor's file) there, removed afterwards; on tmpfs fdatasync is free, so
// the figures are the CPU alone. --warmup W: W more of the list's messages delivered first, untimed
// (the step times a cold process). --inline BYTES: the store's inline threshold (default 32 KiB, the
// step's; 0: every body to a pack, the two-file row). --small: only messages up to 32 KiB.
// --callgrind: under `valgrind --tool=callgrind --instr-atstart=no --separate-threads=yes`,
// collection is switched on for the timed messages only (callgrind_control on this process).
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const option = (name, fallback) => { const i = args.indexOf(name); return i === -1 ? fallback : args[i + 1]; };
const dir = args[0];
const list = option('--list');
if (!dir || dir.startsWith('--') || !list) {
  process.stderr.write('usage: node tools/bench/onesync-cpu.mjs DIR --list LIST.TXT [--messages N] [--warmup W] [--inline BYTES] [--small] [--floor] [--callgrind]\n');
  process.exit(2);
}
const N = Number(option('--messages', 2000)), WARM = Number(option('--warmup', 0));
const INLINE_BYTES_MAX = 32 * 1024;
const inline = Number(option('--inline', INLINE_BYTES_MAX));
const dist = new URL('../../dist/', import.meta.url);
const { Store } = await import(new URL('src/store/store.js', dist));
const { nodeFileSystem } = await import(new URL('src/fs/node-fs.js', dist));
const { favourMainThread } = await import(new URL('src/thread-priority.js', dist));
favourMainThread(); // as the bench's measurement processes do

const files = [];
for (const file of readFileSync(list, 'utf8').trim().split('\n')) {
  if (args.includes('--small') && statSync(file).size > INLINE_BYTES_MAX) continue;
  files.push(file);
  if (files.length === N + WARM) break;
}
// the timed ones first in the list (the step's), the warm-up after them, as deliver.ts takes them
const timed = files.slice(0, N).map((f) => readFileSync(f));
const warm = files.slice(N).map((f) => readFileSync(f));
const threadMs = () => Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[0]) / 1e6;
const collect = (on) => { if (args.includes('--callgrind')) execFileSync('callgrind_control', ['-i', on ? 'on' : 'off', String(process.pid)]); };

rmSync(dir, { recursive: true, force: true });
const deliver = args.includes('--floor') ? await floorDeliver() : await storeDeliver();
for (const body of warm) await deliver(body);
const latencies = [];
collect(true);
const cpu0 = process.cpuUsage(), thread0 = threadMs(), wall0 = performance.now();
for (const body of timed) {
  const t = performance.now();
  await deliver(body);
  latencies.push(performance.now() - t);
}
const wall = performance.now() - wall0, cpu = process.cpuUsage(cpu0), thread = threadMs() - thread0;
collect(false);
await deliver.close();
rmSync(dir, { recursive: true, force: true });
const small = latencies.filter((_, i) => timed[i].length <= INLINE_BYTES_MAX).sort((a, b) => a - b);
console.log(JSON.stringify({
  peer: args.includes('--floor') ? 'floor-sync-one-zeroed' : inline > 0 ? 'mailstore-inline' : 'mailstore-two-file', messages: N, warmup: WARM, seconds: +(wall / 1000).toFixed(3),
  small_p50_ms: +(small[small.length >> 1] ?? 0).toFixed(3), main_thread_cpu_us: Math.round(thread * 1000 / N),
  process_cpu_us: Math.round((cpu.user + cpu.system) / N), system_cpu_us: Math.round(cpu.system / N),
}));

/** One writer's store.append, as src/bench/measure/deliver.ts runs it (bodies up to `inline` bytes inside their record). */
async function storeDeliver() {
  const store = await Store.open(dir, { create: true, fs: nodeFileSystem, inlineBodyBytesMax: inline });
  await store.createMailbox('INBOX');
  const deliver = (body) => store.append('INBOX', body);
  deliver.close = () => store.close();
  return deliver;
}

/** sync-shapes.ts's sync-one-zeroed: a 200-byte record and the body into a file zero-filled beforehand, one fdatasync. */
async function floorDeliver() {
  mkdirSync(dir, { recursive: true });
  const record = Buffer.alloc(200, 0x61);
  const file = await nodeFileSystem.open(join(dir, 'floor'), 'createOrOpen');
  await file.write(Buffer.alloc([...timed, ...warm].reduce((n, b) => n + record.length + b.length, 0)), 0);
  await file.sync();
  let position = 0;
  const deliver = async (body) => {
    const both = Buffer.concat([record, body]);
    await file.write(both, position);
    position += both.length;
    await file.sync();
  };
  deliver.close = () => file.close();
  return deliver;
}
