// The two ways a lone writer's journal commit can reach the disk, alternated in one process
// (BENCHMARKS.md, "One-sync: the flush that measures itself"; src/store/flush-choice.ts): a small
// write, then its fdatasync in this thread (`thread`) or through libuv's thread pool (`pool`), in
// blocks of N commits into a file zero-filled and synced beforehand (the journal's shape).
//
//   node tools/bench/flush-ways.mjs [DIR] [--commits N] [--blocks R]
//
// DIR (default: the current directory) must be on the disk to measure, not tmpfs. Prints, per way,
// each block's p50 and p90 latency, its wall µs a commit, its CPU µs a commit, and the main
// thread's run-queue wait µs a commit (/proc/self/task/PID/schedstat).
import fs from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';

const args = process.argv.slice(2);
const option = (name, fallback) => { const i = args.indexOf(name); return i === -1 ? fallback : Number(args[i + 1]); };
const dir = args.find((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--')) ?? '.';
const N = option('--commits', 300), R = option('--blocks', 8);
const SIZE = 64 << 20;
const path = join(dir, `flush-ways-${process.pid}.tmp`);
fs.writeFileSync(path, Buffer.alloc(SIZE));
const fh = await open(path, 'r+');
fs.fdatasyncSync(fh.fd);
const record = Buffer.alloc(1500, 7);
const schedstat = () => { try { return fs.readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').trim().split(' ').map(Number); } catch { return [0, 0, 0]; } };
const now = () => Number(process.hrtime.bigint()) / 1e3;
const blocks = { thread: [], pool: [] };
let position = 0;
try {
  for (let r = 0; r < R; r++) for (const way of r % 2 ? ['pool', 'thread'] : ['thread', 'pool']) {
    const latencies = [];
    const cpu = process.cpuUsage(), sched = schedstat(), started = now();
    for (let i = 0; i < N; i++) {
      const t = now();
      fs.writeSync(fh.fd, record, 0, record.length, position);
      position = position + record.length > SIZE - 4096 ? 0 : position + record.length;
      if (way === 'thread') fs.fdatasyncSync(fh.fd); else await fh.datasync();
      latencies.push(now() - t);
      await null; // the next commit starts in a later microtask, as a writer's does
    }
    const wall = now() - started, used = process.cpuUsage(cpu), waited = (schedstat()[1] - sched[1]) / 1e3;
    latencies.sort((a, b) => a - b);
    blocks[way].push({ p50: latencies[N >> 1], p90: latencies[Math.floor(N * 0.9)], wall: wall / N, cpu: (used.user + used.system) / N, runq: waited / N });
  }
} finally {
  await fh.close();
  fs.rmSync(path, { force: true });
}
for (const way of ['thread', 'pool']) {
  const column = (key) => blocks[way].map((b) => Math.round(b[key]));
  console.log(JSON.stringify({ way, p50_us: column('p50'), p90_us: column('p90'), wall_us_per_commit: column('wall'), cpu_us_per_commit: column('cpu'), runq_wait_us_per_commit: column('runq') }));
}
