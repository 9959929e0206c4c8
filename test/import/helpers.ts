// What the import tests share: a Maildir on disk, a store for the length of one test, and the
// bodies a mailbox holds, in uid order.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';

/** A Maildir at `dir` (cur/, new/, tmp/) with `messages` in cur/. */
export function maildir(dir: string, messages: Record<string, string> = {}): string {
  for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(dir, sub), { recursive: true });
  for (const [name, text] of Object.entries(messages)) writeFileSync(join(dir, 'cur', name), text);
  return dir;
}

/** Every message body of `mailbox`, in uid order. */
export async function stored(store: Store, mailbox: string): Promise<string[]> {
  const out: string[] = [];
  for await (const m of store.messages(mailbox)) out.push((await store.fetch(mailbox, m.uid)).toString());
  return out;
}

/** Runs `work` on a fresh store, closed afterwards. */
export async function withStore<T>(work: (store: Store) => Promise<T>, label = 'import-store'): Promise<T> {
  const store = await Store.open(tmpDir(label), { create: true });
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}
