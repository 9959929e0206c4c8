// What the stall tools (expunge-stall.ts, user-stall.ts) report of a daemon: its main thread's CPU
// and the quantiles of a probe client's latencies.
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, defaultSocketPath } from '../src/client/client.js';
import { Store } from '../src/store/store.js';

/** The mailbox the probe client reads (one message, uid 1). */
export const PROBE = 'user/probe/INBOX';

/**
 * A store of user a's `mailboxes` mailboxes of `each` messages (`message(i)`) and the probe's, in
 * `dir`: each mailbox's messages in one appendBatch (into packs), or with `inline` one append at a
 * time, 64 at once, so that small bodies go inside their journal records as LMTP delivers them.
 */
export async function makeUserStore(dir: string, mailboxes: number, each: number, message: (i: number) => Buffer, inline = false): Promise<void> {
  const store = await Store.init(dir);
  await store.createMailbox(PROBE);
  await store.append(PROBE, message(-1));
  for (let i = 0; i < mailboxes; i++) {
    const name = `user/a/box${i}`;
    await store.createMailbox(name, { owner: 'a' });
    if (each > 0 && !inline) await store.appendBatch(name, Array.from({ length: each }, (_, k) => ({ bytes: message(i * each + k) })));
  }
  if (inline) {
    let next = 0;
    await Promise.all(Array.from({ length: 64 }, async () => {
      for (let i = next++; i < mailboxes * each; i = next++) await store.append(`user/a/box${i % mailboxes}`, message(i));
    }));
  }
  await store.close();
}

/**
 * user+system CPU seconds of a process's main thread so far (/proc/PID/task/PID/stat, clock ticks
 * of 1/100 s): the event loop's work, without LevelDB's compactions and the thread pool.
 */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The `q` quantile of ascending `sorted` (ms), as printed. */
export function quantile(sorted: number[], q: number): string {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))].toFixed(0) : '-';
}

/**
 * A copy of the store in `template` (made there first by `make` when it holds none) in `base`, a
 * daemon serving it (`bin`, node given `nodeFlags`) and a probe client connected to it.
 */
export async function daemonOnCopy(template: string, make: (dir: string) => Promise<void>, base: string, bin: string, nodeFlags: string[]): Promise<{ dir: string; daemon: ChildProcess; probe: Client }> {
  if (!existsSync(join(template, 'STORE'))) await make(template);
  const dir = join(base, 'store');
  cpSync(template, dir, { recursive: true });
  const daemon = spawn(process.execPath, [...nodeFlags, bin, 'serve', '--store', dir], { stdio: ['ignore', 'ignore', 'inherit'], cwd: base });
  while (!existsSync(defaultSocketPath(dir))) await sleep(20);
  const probe = await Client.connect(defaultSocketPath(dir));
  await sleep(300);
  return { dir, daemon, probe };
}
