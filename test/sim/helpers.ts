// Small helpers shared by the fault tests in test/sim/.
import { expect } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { MailstoreError } from '../../src/errors.js';
import type { Store } from '../../src/store/store.js';

export const msg = (i: number | string, size = 0) =>
  Buffer.concat([Buffer.from(`From: sim@example.org\r\nSubject: ${i}\r\n\r\nbody ${i}\r\n`), Buffer.alloc(size, 0x61 + (String(i).length % 26))]);

export async function expectCode(promise: Promise<unknown>, code: string): Promise<MailstoreError> {
  try {
    await promise;
  } catch (error) {
    expect(error, String(error)).toBeInstanceOf(MailstoreError);
    expect((error as MailstoreError).code, (error as Error).message).toBe(code);
    return error as MailstoreError;
  }
  throw new Error(`expected ${code}, the operation succeeded`);
}

/** path -> size and sha256 of every file below `dir` (directories as 'dir'), skipping `skip` names at the top. */
export function fingerprint(dir: string, skip: string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    const abs = join(dir, rel);
    for (const name of readdirSync(abs)) {
      // lock/ is the kernel lock's LevelDB (its LOG changes on every open): lock state, not data
      if (rel === '' && (skip.includes(name) || name === 'lock')) continue;
      const path = rel ? `${rel}/${name}` : name;
      const st = statSync(join(dir, path));
      if (st.isDirectory()) { out[path] = 'dir'; walk(path); }
      else out[path] = `${st.size}:${createHash('sha256').update(readFileSync(join(dir, path))).digest('hex').slice(0, 16)}`;
    }
  };
  if (existsSync(dir)) walk('');
  return out;
}

/** Every message of a mailbox: uid -> bytes (fetched, so hash-verified). */
export async function contents(store: Store, mailbox: string): Promise<Map<number, Buffer>> {
  const out = new Map<number, Buffer>();
  for await (const m of store.messages(mailbox)) out.set(m.uid, await store.fetch(mailbox, m.uid));
  return out;
}

/** Asserts the mailbox holds exactly `acked` (uid -> bytes), nothing more. */
export async function expectExactly(store: Store, mailbox: string, acked: Map<number, Buffer>, label: string): Promise<void> {
  const got = await contents(store, mailbox);
  expect([...got.keys()], `${label}: uids`).toEqual([...acked.keys()].sort((a, b) => a - b));
  for (const [uid, bytes] of acked) expect(got.get(uid)!.equals(bytes), `${label}: bytes of uid ${uid}`).toBe(true);
}

export function skipReason(condition: boolean, reason: string): boolean {
  if (condition) console.warn(`SKIPPED: ${reason}`);
  return condition;
}
