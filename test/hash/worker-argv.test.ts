// The store's eval'd CommonJS workers (the hash pool, the backup's compressors) in a process whose
// flags read string source as an ES module (src/worker-argv.ts): they must start and work, not die
// and leave their work to the main thread.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { commonJsWorkerArgv, workerExecArgv } from '../../src/worker-argv.js';
import { repoRoot } from '../cli/helpers.js';

const run = promisify(execFile);

describe('the workers\' node flags', () => {
  it('drop only the flags that decide the module type of string source, in both spellings', () => {
    expect(commonJsWorkerArgv(['--input-type=module', '--max-old-space-size=100', '--input-type', 'module', '--experimental-default-type=module', '--experimental-default-type', 'module', '--enable-source-maps'])).toEqual(['--max-old-space-size=100', '--enable-source-maps']);
    expect(commonJsWorkerArgv([])).toEqual([]);
    expect(commonJsWorkerArgv(['--no-warnings'])).toEqual(['--no-warnings']);
  });

  it('are inherited (no list given) unless a module-type flag must go: node refuses V8 and per-process flags in a list it would inherit', () => {
    expect(workerExecArgv([])).toBeUndefined();
    expect(workerExecArgv(['--max-old-space-size=300', '--stack-size=900'])).toBeUndefined();
    expect(workerExecArgv(['--input-type=module', '--enable-source-maps'])).toEqual(['--enable-source-maps']);
  });

  // each: node's own flags for the child; the second and third were refused by node ("invalid execArgv
  // flags") when the session-29 fix passed every flag on, and the backup failed with INTERNAL
  it.each([
    [['--input-type=module']],
    [['--max-old-space-size=300', '--stack-size=900']],
    [['--max-old-space-size=300', '--stack-size=900', '--input-type=module']],
    [['--input-type=module', '--no-opt', '--enable-source-maps']],
  ])('under node %j -e, the hash pool hashes on its worker and the compressors compress on theirs', async (flags) => {
    const dist = join(repoRoot, 'dist/src');
    const source = `(async () => {
const { HashPool } = await import(${JSON.stringify(join(dist, 'hash/pool.js'))});
const { hashBytes, hashReady } = await import(${JSON.stringify(join(dist, 'hash/blake3.js'))});
const { CompressPool } = await import(${JSON.stringify(join(dist, 'backup/compress-pool.js'))});
const { zstdAvailable } = await import(${JSON.stringify(join(dist, 'backup/zstd.js'))});
await hashReady;
const out = {};
const hashes = HashPool.create(1);
if (hashes) {
  const shared = new SharedArrayBuffer(3000);
  new Uint8Array(shared).fill(7, 0, 1000).fill(8, 1000);
  try {
    const { digests } = await hashes.hash(shared, [0, 1000, 1000, 2000]);
    const bytes = Buffer.from(shared);
    out.hashed = Buffer.from(digests).equals(Buffer.concat([hashBytes(bytes.subarray(0, 1000)), hashBytes(bytes.subarray(1000, 3000))]));
  } catch (error) { out.hashError = error.message; }
  await hashes.close();
} else out.hashed = 'no native binding';
const pool = new CompressPool(zstdAvailable ? 'zstd' : 'brotli', 1);
const [compressed] = await pool.compress([Buffer.from('y'.repeat(20000))]);
out.compressed = compressed.length;
out.lost = pool.lost ? pool.lost.message : null;
await pool.close();
console.log(JSON.stringify(out));
})();`;
    const { stdout } = await run(process.execPath, [...flags, '-e', source]);
    const out = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    expect(out.hashError).toBeUndefined();
    expect([true, 'no native binding']).toContain(out.hashed);
    expect(out.lost).toBeNull(); // before the fix: "require is not defined in ES module scope, ..."
    expect(out.compressed).toBeGreaterThan(0);
    expect(out.compressed).toBeLessThan(20000);
  });
});

describe('the workers\' output', () => {
  // node pipes a worker's stdout and stderr into the process's with an 'error' listener on
  // process.stdout and process.stderr per live worker: at the 11th, MaxListenersExceededWarning was
  // written into the process's stderr (inside a command's error output: session 41's CI)
  it('reaches the process\'s stdout and stderr, with no listener per worker and no leak warning', async () => {
    const source = `(async () => {
const { startCommonJsWorker } = await import(${JSON.stringify(join(repoRoot, 'dist/src/worker-argv.js'))});
process.stderr.write('');
process.stdout.write('');
const before = [process.stdout.listenerCount('error'), process.stderr.listenerCount('error')];
const workers = [];
for (let i = 0; i < 12; i++) {
  const worker = startCommonJsWorker("const { parentPort, workerData } = require('node:worker_threads'); process.stdout.write('out ' + workerData + '\\\\n'); process.stderr.write('err ' + workerData + '\\\\n'); parentPort.once('message', () => process.exit(0));", { workerData: i });
  workers.push(worker);
}
await new Promise((resolve) => setTimeout(resolve, 50));
const during = [process.stdout.listenerCount('error'), process.stderr.listenerCount('error')];
await Promise.all(workers.map((worker) => new Promise((resolve) => { worker.once('exit', resolve); worker.postMessage('go'); })));
process.stdout.write('RESULT ' + JSON.stringify({ before, during }) + '\\n');
})();`;
    const { stdout, stderr } = await run(process.execPath, ['-e', source]);
    const result = JSON.parse(/RESULT (.*)/.exec(stdout)![1]!) as { before: number[]; during: number[] };
    expect(result.during).toEqual(result.before);
    expect(stderr).not.toMatch(/MaxListeners/);
    for (let i = 0; i < 12; i++) {
      expect(stdout).toContain(`out ${i}\n`);
      expect(stderr).toContain(`err ${i}\n`);
    }
  });
});
