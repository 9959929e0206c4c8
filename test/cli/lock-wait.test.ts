// Two commands on one store: the second waits for the lock (--wait SECONDS, default
// limits.cliLockWaitSeconds) instead of failing LOCKED at once, --no-wait fails at once, and the
// LOCKED message names the holder's pid and command (never "process (unknown)").
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { limits } from '../../src/limits.js';
import { bin, json, repoRoot, requireBuilt, run } from './helpers.js';
import { newStore } from './in-process.js';

beforeAll(requireBuilt);

/** Made in this process: the commands under test are spawned, the store they share need not be. */
const freshStore = (): Promise<string> => newStore(['INBOX']);

/** A child that runs `script` (an ES module, argv[1] = store) and says "ready" once it holds what it holds. */
async function holder(script: string, store: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, store], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((ready, failed) => {
    child.stdout!.on('data', (chunk: Buffer) => { if (chunk.toString().includes('ready')) ready(); });
    child.on('exit', (code) => failed(new Error(`holder exited ${code}`)));
  });
  return child;
}

/** A process holding the store through the library until its stdin closes. */
function storeHolder(store: string): Promise<ChildProcess> {
  return holder(`
    const { Store } = await import(${JSON.stringify(join(repoRoot, 'dist/src/index.js'))});
    const store = await Store.open(process.argv[1]);
    process.stdout.write('ready\\n');
    process.stdin.on('data', () => {});
    process.stdin.on('end', async () => { await store.close(); process.exit(0); });`, store);
}

async function release(child: ChildProcess): Promise<void> {
  child.stdin!.end();
  if (child.exitCode === null) await new Promise((done) => child.on('close', done));
}

describe('the CLI waits for the lock', () => {
  it('two commands started at once both succeed (pairs of appends, repeated)', async () => {
    const store = await freshStore();
    const pairs = 6;
    for (let pair = 0; pair < pairs; pair++) {
      const results = await Promise.all([0, 1].map((i) => run(['append', 'INBOX', '-', '--json'], { store, input: `Subject: ${pair}.${i}\r\n\r\nbody\r\n` })));
      for (const result of results) expect(result.code, result.stderr).toBe(0);
    }
    const status = await json(['mailbox', 'status', 'INBOX'], { store });
    expect(status.messages).toBe(pairs * 2);
  });

  it('--no-wait fails LOCKED (exit 2) at once, naming the holder; without it the command waits for the holder to go', async () => {
    const store = await freshStore();
    const child = await storeHolder(store);
    try {
      const started = Date.now();
      const refused = await run(['--no-wait', 'mailbox', 'list'], { store });
      expect(refused.code).toBe(2);
      // the holder's command from /proc, so the admin knows which job holds the store
      expect(refused.stderr).toMatch(new RegExp(`^mailstore: LOCKED: .*in use by process ${child.pid} \\(node --input-type=module -e `));
      // at once: not after the wait it takes without --no-wait (the 5 s this said before was a node
      // start or two, which took 5.5 s at load 25)
      expect(Date.now() - started).toBeLessThan(limits.cliLockWaitSeconds * 1000);
      const waiting = run(['mailbox', 'status', 'INBOX', '--json'], { store });
      await new Promise((r) => setTimeout(r, 700));
      await release(child);
      const result = await waiting;
      expect(result.code, result.stderr).toBe(0);
      expect(JSON.parse(result.stdout.toString()).messages).toBe(0);
    } finally {
      await release(child);
    }
  });

  it('a holder that keeps the store past --wait: LOCKED naming its pid, after the wait', async () => {
    const store = await freshStore();
    const child = await storeHolder(store);
    try {
      const started = Date.now();
      const result = await run(['--wait', '0.8', 'append', 'INBOX', '-'], { store, input: 'Subject: x\r\n\r\nx\r\n' });
      const waited = Date.now() - started;
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(new RegExp(`^mailstore: LOCKED: .*in use by process ${child.pid}\\b`));
      expect(waited).toBeGreaterThanOrEqual(800);
      expect((await run(['--wait', 'soon', 'stats'], { store })).code, 'a --wait that is not seconds').toBe(5);
    } finally {
      await release(child);
    }
    expect((await json(['mailbox', 'status', 'INBOX'], { store })).messages, 'the refused append wrote nothing').toBe(0);
  });

  it.skipIf(spawnSync('sh', ['-c', 'command -v script']).status !== 0)('on a terminal, says once on stderr that it is waiting and for whom (util-linux script gives it a pty)', async () => {
    const store = await freshStore();
    const child = await storeHolder(store);
    try {
      const command = `${JSON.stringify(process.execPath)} ${JSON.stringify(bin)} --store ${JSON.stringify(store)} --wait 2 stats`;
      const result = spawnSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8' });
      const notices = result.stdout.match(/mailstore: the store is in use by process \d+ \(node [^)]*\); waiting up to 2 s for it/g) ?? [];
      expect(notices.map((n) => n.match(/process (\d+)/)![1]), result.stdout).toEqual([String(child.pid)]);
      expect(result.stdout).toMatch(/LOCKED: .*in use by process/);
    } finally {
      await release(child);
    }
    const quiet = await run(['--wait', '1.5', 'stats'], { store }); // not a terminal: no notice, just the result
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).toBe('');
  });

  it('a holder whose pid never appears is "another process (starting...)", not "(unknown)"', async () => {
    const store = await freshStore();
    const level = createRequire(import.meta.url).resolve('classic-level');
    const child = await holder(`
      import { createRequire } from 'node:module';
      const { ClassicLevel } = createRequire(import.meta.url)(${JSON.stringify(level)});
      const db = new ClassicLevel(process.argv[1] + '/lock');
      await db.open();
      process.stdout.write('ready\\n');
      process.stdin.on('data', () => {});
      process.stdin.on('end', async () => { await db.close(); process.exit(0); });`, store);
    try {
      const result = await run(['--no-wait', 'stats'], { store });
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/^mailstore: LOCKED: .*in use by another process \(starting/);
    } finally {
      await release(child);
    }
  });
});
