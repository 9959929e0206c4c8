// A child process holding a store's kernel lock (lock/) and nothing else, as Store.open does before
// it writes its pid: for tests of what other openers and tools do beside a holder.
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { afterEach } from 'vitest';
import { Store } from '../../src/store/store.js';
import { tmpDir } from './tmp.js';

const level = createRequire(import.meta.url).resolve('classic-level');
const children: ChildProcess[] = [];
// each test file imports this module afresh: its holders are released after each of its tests
afterEach(async () => {
  for (const child of children.splice(0)) await releaseHolder(child);
});

/** Resolves once the child holds the lock of the store at `dir`; it lets go when its stdin closes (releaseHolder). */
export async function kernelLockHolder(dir: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', `
    import { createRequire } from 'node:module';
    const { ClassicLevel } = createRequire(import.meta.url)(${JSON.stringify(level)});
    const db = new ClassicLevel(process.argv[1] + '/lock');
    await db.open();
    process.stdout.write('ready\\n');
    process.stdin.on('data', () => {});
    process.stdin.on('end', async () => { await db.close(); process.exit(0); });`, dir], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(child);
  await new Promise<void>((ready, failed) => {
    child.stdout!.on('data', (chunk: Buffer) => { if (chunk.toString().includes('ready')) ready(); });
    child.on('exit', (code) => failed(new Error(`holder exited ${code}`)));
  });
  return child;
}

/** The holder lets go of the lock and exits. */
export async function releaseHolder(child: ChildProcess): Promise<void> {
  child.stdin!.end();
  if (child.exitCode === null) await new Promise((done) => child.on('close', done));
}

/** A new store with an empty INBOX, closed: what the lock's tests open, hold and contend for. */
export async function closedStoreWithInbox(): Promise<string> {
  const dir = tmpDir();
  const store = await Store.open(dir, { create: true });
  await store.createMailbox('INBOX');
  await store.close();
  return dir;
}
