// favourMainThread (src/thread-priority.ts): V8's and libuv's threads below the main thread, the
// threads started later by the main thread (the store's workers) left as they are, never a raise;
// and the daemon (the CLI) doing it for itself.
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { repoRoot, tempDir } from '../cli/helpers.js';
import { freshStore, serve } from './processes.js';

const run = promisify(execFile);
const module = join(repoRoot, 'dist/src/thread-priority.js');
const linux = process.platform === 'linux';

/**
 * Each thread's nice value (field 19 of /proc/PID/task/TID/stat) by thread id: source text, so the
 * child runs the very same function (a function's own text is rewritten by the test's transform).
 */
const NICE_OF_SOURCE = `function niceOf(pid) {
  const out = new Map();
  for (const tid of readdirSync('/proc/' + pid + '/task')) {
    try {
      const stat = readFileSync('/proc/' + pid + '/task/' + tid + '/stat', 'utf8');
      out.set(Number(tid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]));
    } catch {} // exited meanwhile
  }
  return out;
}`;

// the same text the child runs
const niceOf = new Function('readdirSync', 'readFileSync', `${NICE_OF_SOURCE}; return niceOf;`)(readdirSync, readFileSync) as (pid: number | 'self') => Map<number, number>;

/** Runs `body` (ESM, with `favourMainThread` and `niceOf` in scope) in a fresh node process; its last stdout line as JSON. */
async function inChild(body: string): Promise<Record<string, unknown>> {
  const source = `
import { favourMainThread, helperNice } from ${JSON.stringify(module)};
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
${NICE_OF_SOURCE}
${body}`;
  // a file: a plain script, whose threads are the ones under test (-e with --input-type=module: test/hash/worker-argv.test.ts)
  const file = join(tempDir('mailstore-priority-'), 'child.mjs');
  writeFileSync(file, source);
  const { stdout } = await run(process.execPath, [file]);
  return JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

describe.runIf(linux)('favourMainThread', () => {
  it('lowers every other thread 10 steps below the main one, the thread pool included, and leaves later workers alone', async () => {
    const out = await inChild(`
const before = niceOf('self');
const lowered = favourMainThread();
const after = niceOf('self');
// the worker stays until terminated (a listener on its port): one that ended after posting its id was
// sometimes gone before its nice was read (a fresh-clone CI run read undefined)
const worker = new Worker("const { parentPort } = require('node:worker_threads'); parentPort.on('message', () => {}); parentPort.postMessage(Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop()))", { eval: true });
const workerId = await new Promise((resolve) => worker.once('message', resolve));
const withWorker = niceOf('self');
await worker.terminate();
console.log(JSON.stringify({ pid: process.pid, lowered, before: [...before], after: [...after], workerId, workerNice: withWorker.get(workerId), again: favourMainThread(), helperNice: helperNice() }));
`);
    const after = new Map(out.after as [number, number][]);
    const before = new Map(out.before as [number, number][]);
    const main = after.get(out.pid as number)!;
    expect(main).toBe(before.get(out.pid as number)); // the main thread as it was
    const others = [...after].filter(([tid]) => tid !== out.pid);
    // V8's platform threads and libuv's pool (started by favourMainThread's first job when nothing had)
    expect(others.length).toBeGreaterThanOrEqual(5);
    const target = Math.min(19, main + 10);
    for (const [, nice] of others) expect(nice).toBe(target);
    expect(out.lowered).toBe(others.filter(([tid]) => (before.get(tid) ?? main) < target || !before.has(tid)).length);
    expect(out.helperNice).toBe(target);
    // a worker started afterwards by the main thread keeps its priority (the store's hash workers)
    expect(out.workerNice, JSON.stringify(out)).toBe(main);
    // nothing left to lower the second time (the worker is gone by then)
    expect(out.again).toBe(0);
  });

  it('never raises a thread, refuses steps outside 1-19, and does nothing from a worker thread', async () => {
    const out = await inChild(`
const { setPriority } = await import('node:os');
favourMainThread(3);
const first = niceOf('self');
favourMainThread(1); // a smaller step later: nothing goes back up
const second = niceOf('self');
const errors = [];
for (const steps of [0, 20, 1.5, -1]) { try { favourMainThread(steps); errors.push('none'); } catch (e) { errors.push(e.code); } }
const fromWorker = await new Promise((resolve, reject) => {
  const w = new Worker(${JSON.stringify(`import(${JSON.stringify(module)}).then((m) => require('node:worker_threads').parentPort.postMessage(String(m.favourMainThread())));`)}, { eval: true });
  w.once('message', resolve); w.once('error', reject);
});
console.log(JSON.stringify({ pid: process.pid, first: [...first], second: [...second], errors, fromWorker }));
`);
    const first = new Map(out.first as [number, number][]);
    const second = new Map(out.second as [number, number][]);
    const main = first.get(out.pid as number)!;
    for (const [tid, nice] of first) if (tid !== out.pid) expect(nice).toBe(Math.min(19, main + 3));
    for (const [tid, nice] of second) if (first.has(tid)) expect(nice).toBe(first.get(tid));
    expect(out.errors).toEqual(['INVALID', 'INVALID', 'INVALID', 'INVALID']);
    expect(out.fromWorker).toBe('undefined');
  });

  it('a compression pool given a nice value starts its workers that low (an incremental backup\'s), and one given none at the main thread\'s', async () => {
    const pool = join(repoRoot, 'dist/src/backup/compress-pool.js');
    const out = await inChild(`
const { CompressPool } = await import(${JSON.stringify(pool)});
const { zstdAvailable } = await import(${JSON.stringify(join(repoRoot, 'dist/src/backup/zstd.js'))});
const codec = zstdAvailable ? 'zstd' : 'brotli';
const before = new Set(niceOf('self').keys());
const low = new CompressPool(codec, 1, undefined, undefined, 7);
const lowOut = await low.compress([Buffer.from('x'.repeat(10000))]);
const withLow = niceOf('self');
const plain = new CompressPool(codec, 1);
await plain.compress([Buffer.from('y'.repeat(10000))]);
const withBoth = niceOf('self');
await low.close(); await plain.close();
const lowThreads = [...withLow].filter(([t]) => !before.has(t));
const plainThreads = [...withBoth].filter(([t]) => !withLow.has(t));
const mainNice = (await import('node:os')).getPriority();
console.log(JSON.stringify({ lowThreads, plainThreads, compressed: lowOut[0].length, mainNice }));
`);
    expect(out.compressed).toBeGreaterThan(0);
    expect((out.lowThreads as [number, number][]).map(([, n]) => n)).toContain(7);
    // the main thread's own: 0 in a plain run, more under `nice bash .ci/run` (it was 0 here, and failed there)
    expect((out.plainThreads as [number, number][]).map(([, n]) => n)).toContain(out.mainNice);
    expect((out.plainThreads as [number, number][]).map(([, n]) => n)).not.toContain(7);
  });

  it('the daemon runs its main thread above V8\'s and the thread pool\'s', async () => {
    const store = await freshStore();
    const daemon = await serve(store);
    try {
      const nice = niceOf(daemon.child.pid!);
      const main = nice.get(daemon.child.pid!)!;
      const others = [...nice].filter(([tid]) => tid !== daemon.child.pid);
      expect(others.length).toBeGreaterThanOrEqual(5);
      // every helper there at its start is lower; the store's hash workers (none started yet by an idle daemon) would not be
      const lowered = others.filter(([, n]) => n === Math.min(19, main + 10));
      expect(lowered.length).toBeGreaterThanOrEqual(5);
      expect(others.filter(([, n]) => n < main)).toEqual([]);
    } finally {
      daemon.child.kill('SIGTERM');
      await daemon.exited;
    }
  });
});
