// Shared by the replication tests: key files, stores, waiting, and comparing two stores' state.
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { expect } from 'vitest';
import { MailstoreError } from '../../src/errors.js';
import type { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';

export const msg = (i: number, pad = 0) => Buffer.from(`From: a@example.org\r\nSubject: ${i}\r\n\r\nbody ${i} ${'x'.repeat(pad)}\r\n`);

export function keyFile(dir = tmpDir('key'), secret = randomBytes(32).toString('hex')): string {
  const path = join(dir, `key-${randomBytes(4).toString('hex')}`);
  writeFileSync(path, `${secret}\n`);
  chmodSync(path, 0o600);
  return path;
}

export const quiet = () => undefined;

export async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 15_000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export { codeOf } from '../helpers/errors.js';

/** Every mailbox with its status and every message's metadata: what a replica must equal. */
export async function logicalState(store: Store): Promise<unknown> {
  const out: Record<string, unknown> = {};
  for (const { name } of await store.listMailboxes()) {
    const messages = [];
    for await (const m of store.messages(name)) messages.push(m);
    out[name] = { status: await store.status(name), messages };
  }
  return out;
}

/** The packs of two stores are byte-identical. */
export function samePacks(a: string, b: string): void {
  const names = readdirSync(join(a, 'packs')).filter((n) => n.endsWith('.pack'));
  expect(readdirSync(join(b, 'packs')).filter((n) => n.endsWith('.pack'))).toEqual(names);
  for (const n of names) expect(readFileSync(join(b, 'packs', n)).equals(readFileSync(join(a, 'packs', n)))).toBe(true);
}
