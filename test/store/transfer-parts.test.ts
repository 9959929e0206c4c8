// A copy or move of many uids commits in parts (a delivery elsewhere is not held behind it), its
// uids at the target one ascending run, its quota checked whole; a copy cut short is undone (by
// the call, or by the next open after a crash), a move cut short leaves each message in one place.
import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { limits } from '../../src/limits.js';
import { MailstoreError } from '../../src/errors.js';
import { Store } from '../../src/store/store.js';
import { setQuota } from '../../src/store/quota.js';
import type { Mutation } from '../../src/store/writer.js';
import { tmpDir } from '../helpers/tmp.js';

const msg = (i: number) => Buffer.from(`From: a@example.org\r\nSubject: ${i}\r\n\r\nbody ${i}\r\n`);
const part = limits.uidChangePartMessages;
afterEach(() => { limits.uidChangePartMessages = part; });

async function storeWith(count: number): Promise<Store> {
  const store = await Store.open(join(tmpDir('transfer-parts'), 's'), { create: true });
  for (const name of ['user/a/INBOX', 'user/a/Archive', 'user/b/INBOX']) await store.createMailbox(name);
  await store.appendBatch('user/a/INBOX', Array.from({ length: count }, (_, i) => ({ bytes: msg(i) })));
  return store;
}

async function subjects(store: Store, mailbox: string): Promise<string[]> {
  const all: string[] = [];
  for await (const m of store.readMessages(mailbox)) all.push(/Subject: (\S+)/.exec(m.body.toString())![1]);
  return all;
}

const uids = (count: number) => Array.from({ length: count }, (_, i) => i + 1);
const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i);

/** Makes the writer's `nth` submit (from now on) run `instead` in its place. */
function onSubmit(store: Store, nth: number, instead: () => Promise<unknown>): void {
  const writer = (store as unknown as { writer: { submit<T>(m: Mutation<T>): Promise<T> } }).writer;
  const submit = writer.submit.bind(writer);
  let calls = 0;
  writer.submit = <T>(mutation: Mutation<T>) => (++calls === nth ? instead() as Promise<T> : submit(mutation));
}

/** A copy of 1000 uids in parts of 100 whose fourth part and the undo after it fail (NO_SPACE): its three parts stay in user/a/Archive. */
async function copyWithFailedUndo(store: Store): Promise<void> {
  limits.uidChangePartMessages = 100;
  const writer = (store as unknown as { writer: { submit<T>(m: Mutation<T>): Promise<T> } }).writer;
  const submit = writer.submit.bind(writer);
  let calls = 0;
  writer.submit = <T>(mutation: Mutation<T>) => (++calls === 4 || calls === 5 ? Promise.reject(new MailstoreError('NO_SPACE', 'disk full (injected)')) : submit(mutation));
  const error = await store.copy('user/a/INBOX', uids(1000), 'user/a/Archive').catch((e: unknown) => e);
  writer.submit = submit;
  expect((error as MailstoreError).code).toBe('NO_SPACE');
  expect(await subjects(store, 'user/a/Archive')).toEqual(range(0, 300).map(String)); // the undo failed: three parts there
}

/** A copy or move of 1000 uids in parts of 100 whose store stops after three parts (as a crash there: each part is durable), reopened. */
async function cutShortAfterThreeParts(verb: 'copy' | 'move'): Promise<Store> {
  limits.uidChangePartMessages = 100;
  const store = await storeWith(1000);
  onSubmit(store, 4, async () => { void store.close(); throw new MailstoreError('CLOSED', 'stopped (injected)'); });
  const error = await store[verb]('user/a/INBOX', uids(1000), 'user/a/Archive').catch((e: unknown) => e);
  expect((error as MailstoreError).code).toBe('CLOSED');
  await store.close().catch(() => undefined);
  return Store.open(store.root);
}

describe('copy and move of many uids commit in parts', () => {
  it('copy of 1000 uids in parts of 100: a delivery elsewhere commits first; the target uids are one run; each message copied once', async () => {
    limits.uidChangePartMessages = 100;
    const store = await storeWith(1000);
    const order: string[] = [];
    const copy = store.copy('user/a/INBOX', uids(1000), 'user/a/Archive').then((r) => { order.push('copy'); return r; });
    const delivery = store.append('user/b/INBOX', msg(-1)).then(() => { order.push('delivery'); });
    const [result] = await Promise.all([copy, delivery]);
    expect(order).toEqual(['delivery', 'copy']);
    expect(result.mapping).toEqual(uids(1000).map((u) => [u, u]));
    expect(await subjects(store, 'user/a/Archive')).toEqual(range(0, 1000).map(String));
    expect(await subjects(store, 'user/a/INBOX')).toHaveLength(1000);
    const { changed } = await store.changesSince('user/a/Archive', 0);
    expect(new Set(changed.map((m) => m.modseq)).size).toBe(10);
    await store.close();
  });

  it('a delivery into the target of a move in parts waits for it and takes the uid after its run; nothing in two places', async () => {
    limits.uidChangePartMessages = 100;
    const store = await storeWith(1000);
    await store.append('user/a/Archive', msg(-1)); // uid 1 there
    const move = store.move('user/a/INBOX', uids(1000), 'user/a/Archive');
    const delivery = store.append('user/a/Archive', msg(-2));
    const [result, delivered] = await Promise.all([move, delivery]);
    expect(result.mapping).toEqual(uids(1000).map((u) => [u, u + 1]));
    expect(delivered.uid).toBe(1002);
    expect(await subjects(store, 'user/a/INBOX')).toEqual([]);
    expect(await subjects(store, 'user/a/Archive')).toEqual(['-1', ...range(0, 1000).map(String), '-2']);
    await store.close();
  });

  it('a copy in parts of a mailbox into itself copies each message once, not the copies its earlier parts made (COPY 1:2000 of 1000 messages onto INBOX)', async () => {
    limits.uidChangePartMessages = 100;
    const store = await storeWith(1000);
    const result = await store.copy('user/a/INBOX', uids(2000), 'user/a/INBOX');
    expect(result.mapping).toEqual(uids(1000).map((u) => [u, u + 1000]));
    expect(await subjects(store, 'user/a/INBOX')).toEqual([...range(0, 1000), ...range(0, 1000)].map(String));
    await store.close();
  });

  it('a copy in parts takes the messages its source held when it began: one delivered there meanwhile, whose uid the range names, is not copied', async () => {
    limits.uidChangePartMessages = 100;
    const store = await storeWith(1000);
    const writer = (store as unknown as { writer: { submit<T>(m: Mutation<T>): Promise<T> } }).writer;
    const submit = writer.submit.bind(writer);
    let calls = 0;
    let delivered: { uid: number } | undefined;
    // the delivery commits after the copy's first part, before its second
    writer.submit = <T>(mutation: Mutation<T>) => {
      if (++calls !== 2) return submit(mutation);
      writer.submit = submit;
      return store.append('user/a/INBOX', msg(-1)).then((r) => { delivered = r; return submit(mutation); });
    };
    const result = await store.copy('user/a/INBOX', uids(1010), 'user/a/Archive');
    expect(delivered?.uid).toBe(1001);
    expect(result.mapping).toEqual(uids(1000).map((u) => [u, u]));
    expect(await subjects(store, 'user/a/Archive')).toEqual(range(0, 1000).map(String));
    await store.close();
  });

  it('the quota is checked for the whole call up front: OVER_QUOTA, nothing copied', async () => {
    limits.uidChangePartMessages = 100;
    const store = await storeWith(1000);
    await store.createMailbox('user/c/INBOX');
    await setQuota(store, 'user/c', { messages: 500 });
    const error = await store.copy('user/a/INBOX', uids(1000), 'user/c/INBOX').catch((e: unknown) => e);
    expect((error as MailstoreError).code).toBe('OVER_QUOTA');
    expect(await subjects(store, 'user/c/INBOX')).toEqual([]);
    const moved = await store.move('user/a/INBOX', uids(1000), 'user/c/INBOX').catch((e: unknown) => e);
    expect((moved as MailstoreError).code).toBe('OVER_QUOTA');
    expect(await subjects(store, 'user/a/INBOX')).toHaveLength(1000);
    await store.close();
  });

  it('a copy whose fourth part fails (NO_SPACE) is undone: the target as it was, the source whole; run again, each message once', async () => {
    limits.uidChangePartMessages = 100;
    const store = await storeWith(1000);
    onSubmit(store, 4, async () => { throw new MailstoreError('NO_SPACE', 'disk full (injected)'); });
    const error = await store.copy('user/a/INBOX', uids(1000), 'user/a/Archive').catch((e: unknown) => e);
    expect((error as MailstoreError).code).toBe('NO_SPACE');
    expect(await subjects(store, 'user/a/Archive')).toEqual([]);
    expect(await subjects(store, 'user/a/INBOX')).toHaveLength(1000);
    const again = await store.copy('user/a/INBOX', uids(1000), 'user/a/Archive');
    expect(again.mapping).toEqual(uids(1000).map((u) => [u, u + 300]));
    expect(await subjects(store, 'user/a/Archive')).toEqual(range(0, 1000).map(String));
    await store.close();
  });

  it('a copy whose undo failed too is undone by the next copy into that mailbox, before it copies: each message once, its uids one run', async () => {
    const store = await storeWith(1000);
    await copyWithFailedUndo(store);
    const again = await store.copy('user/a/INBOX', uids(1000), 'user/a/Archive');
    expect(again.mapping).toEqual(uids(1000).map((u) => [u, u + 300]));
    expect(await subjects(store, 'user/a/Archive')).toEqual(range(0, 1000).map(String));
    await store.close();
    const reopened = await Store.open(store.root); // nothing left for open to undo
    expect(await subjects(reopened, 'user/a/Archive')).toEqual(range(0, 1000).map(String));
    await reopened.close();
  });

  it('the undo of a copy cut short keeps a copy whose original was expunged meanwhile (its last message): mail is never deleted by an undo', async () => {
    const store = await storeWith(1000);
    await copyWithFailedUndo(store); // the three parts stay, visible, until the next open
    await store.expunge('user/a/INBOX', range(1, 50)); // a client, seeing them in Archive, removes 50 originals
    await store.close();
    const reopened = await Store.open(store.root); // the undo: the other 250 copies go
    expect(await subjects(reopened, 'user/a/Archive')).toEqual(range(0, 50).map(String));
    expect(await subjects(reopened, 'user/a/INBOX')).toEqual(range(50, 950).map(String));
    await reopened.close();
  });

  it('what a promotion finishes in the background (finishInterrupted) leaves a copy in parts that is running alone: each message it reports copied is there', async () => {
    limits.uidChangePartMessages = 100;
    const store = await storeWith(1000);
    let background: Promise<void> | undefined;
    const writer = (store as unknown as { writer: { submit<T>(m: Mutation<T>): Promise<T> } }).writer;
    const submit = writer.submit.bind(writer);
    let calls = 0;
    writer.submit = <T>(mutation: Mutation<T>) => {
      if (++calls !== 4) return submit(mutation);
      // promote: a replica made primary while it serves finishes the deletes and copies its old
      // primary left half done, in the background; this copy (three parts in) is none of them
      background = store.replication().finishInterrupted();
      return new Promise<void>((resolve) => setTimeout(resolve, 100)).then(() => submit(mutation));
    };
    const copied = await store.copy('user/a/INBOX', uids(1000), 'user/a/Archive');
    await background;
    expect(copied.mapping).toEqual(uids(1000).map((u) => [u, u]));
    expect(await subjects(store, 'user/a/Archive')).toEqual(range(0, 1000).map(String));
    await store.close();
  });

  it('calls made one after another without waiting reach the writer in their order: a copy then an expunge of its messages (a client\'s pipelined COPY, EXPUNGE) copies every one (the crash explorer\'s model checks the same for every call)', async () => {
    const store = await storeWith(10);
    const copied = store.copy('user/a/INBOX', uids(10), 'user/a/Archive');
    const expunged = store.expunge('user/a/INBOX', uids(10));
    expect((await copied).mapping).toEqual(uids(10).map((u) => [u, u]));
    expect((await expunged).expunged).toEqual(uids(10));
    expect(await subjects(store, 'user/a/Archive')).toEqual(range(0, 10).map(String));
    await store.close();
  });

  it('a copy cut short between parts (the store stopped) is undone by the next open; run again, each message once', async () => {
    const reopened = await cutShortAfterThreeParts('copy');
    expect(await subjects(reopened, 'user/a/Archive')).toEqual([]);
    expect(await subjects(reopened, 'user/a/INBOX')).toHaveLength(1000);
    await reopened.copy('user/a/INBOX', uids(1000), 'user/a/Archive');
    expect(await subjects(reopened, 'user/a/Archive')).toEqual(range(0, 1000).map(String));
    await reopened.close();
  });

  it('a move cut short between parts leaves each message in exactly one place; run again, it finishes', async () => {
    const reopened = await cutShortAfterThreeParts('move');
    expect(await subjects(reopened, 'user/a/Archive')).toEqual(range(0, 300).map(String));
    expect(await subjects(reopened, 'user/a/INBOX')).toEqual(range(300, 700).map(String));
    const rest = await reopened.move('user/a/INBOX', uids(1000), 'user/a/Archive');
    expect(rest.mapping).toEqual(range(301, 700).map((u) => [u, u]));
    expect(await subjects(reopened, 'user/a/Archive')).toEqual(range(0, 1000).map(String));
    expect(await subjects(reopened, 'user/a/INBOX')).toEqual([]);
    await reopened.close();
  });

  it('a move or copy in parts stopped as the store closes (stopCallsInParts, a daemon\'s SIGTERM) ends at the next part boundary: UNAVAILABLE; a move\'s parts stay, a copy is undone at the next open', async () => {
    for (const verb of ['move', 'copy'] as const) {
      limits.uidChangePartMessages = 100;
      const store = await storeWith(1000);
      const writer = (store as unknown as { writer: { submit<T>(m: Mutation<T>): Promise<T> } }).writer;
      const submit = writer.submit.bind(writer);
      let calls = 0;
      writer.submit = <T>(mutation: Mutation<T>) => submit(mutation).finally(() => { if (++calls === 3) store.stopCallsInParts(); });
      const error = await store[verb]('user/a/INBOX', uids(1000), 'user/a/Archive').catch((e: unknown) => e);
      expect((error as MailstoreError).code).toBe('UNAVAILABLE');
      expect((error as MailstoreError).message).toContain(verb === 'move' ? 'its uids before 301 (300 of 1000) are moved to user/a/Archive' : 'nothing of it is kept');
      await store.close();
      const reopened = await Store.open(store.root);
      expect(await subjects(reopened, 'user/a/Archive')).toEqual(verb === 'move' ? range(0, 300).map(String) : []);
      expect(await subjects(reopened, 'user/a/INBOX')).toEqual(range(verb === 'move' ? 300 : 0, verb === 'move' ? 700 : 1000).map(String));
      await reopened.close();
    }
  });
});
