// The change log as a feed and its consumers: records come out in order from any seq, a consumer's
// cursor is durable and only moves forward, a waiting consumer wakes on a commit, a handler that
// cannot take what it needs gets the same records again, and a state snapshot taken beside writers
// holds exactly the state at its seq.
import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { MailstoreError } from '../../src/errors.js';
import { runConsumer, type Change } from '../../src/store/changes.js';
import { checkpointOps, snapshotState } from '../../src/store/checkpoint.js';
import type { IndexRangeReader } from '../../src/index/index-db.js';
import { keys, messageKeyUid } from '../../src/keys/index-keys.js';
import { SPACE } from '../../src/keys/tuple.js';
import { limits } from '../../src/limits.js';
import type { MessageRecord, Op } from '../../src/store/records.js';
import { internalsOf as internals } from '../helpers/internals.js';
import { tmpDir } from '../helpers/tmp.js';
import { until } from '../helpers/until.js';
import { codeOf } from '../helpers/errors.js';

const msg = (i: number) => Buffer.from(`From: a@example.org\r\nSubject: ${i}\r\n\r\nbody ${i}\r\n`);


async function all(iterable: AsyncIterable<Change>): Promise<Change[]> {
  const out: Change[] = [];
  for await (const c of iterable) out.push(c);
  return out;
}

describe('change feed', () => {
  it('hands out every committed record in order, from any seq, decoded', async () => {
    const root = tmpDir();
    const store = await Store.open(root, { create: true });
    await store.createMailbox('INBOX');
    for (let i = 1; i <= 5; i++) await store.append('INBOX', msg(i));
    await store.expunge('INBOX', [2]);
    const last = store.changes.lastSeq;
    const changes = await all(store.changes.read(0));
    expect(changes.map((c) => c.seq)).toEqual(Array.from({ length: last }, (_, i) => i + 1));
    const kinds = changes.flatMap((c) => c.ops.map((o: Op) => o.op));
    expect(kinds.filter((k) => k === 'message.add')).toHaveLength(5);
    expect(kinds).toContain('message.expunge');
    expect(kinds).toContain('mailbox.create');
    const tail = await all(store.changes.read(last - 2));
    expect(tail.map((c) => c.seq)).toEqual([last - 1, last]);
    expect(await all(store.changes.read(last))).toEqual([]);
    expect((await all(store.changes.read(0, { limit: 2 }))).map((c) => c.seq)).toEqual([1, 2]);
    await store.close();
  });

  it('a consumer cursor is durable, moves only forward, and survives a reopen', async () => {
    const root = tmpDir();
    let store = await Store.open(root, { create: true });
    await store.createMailbox('INBOX');
    await store.append('INBOX', msg(1));
    const at = await store.changes.register('events', 0);
    expect(at.seq).toBe(0);
    expect((await store.changes.consumers())[0]).toMatchObject({ name: 'events', seq: 0, lagRecords: store.changes.lastSeq, behind: false });
    await store.changes.advance('events', 2);
    expect(await codeOf(store.changes.advance('events', 1))).toBe('INVALID');
    expect(await codeOf(store.changes.advance('events', store.changes.lastSeq + 1))).toBe('INVALID');
    expect(await codeOf(store.changes.advance('nobody', 1))).toBe('NOT_FOUND');
    expect(await codeOf(store.changes.register('../etc', 0))).toBe('INVALID');
    // registering again keeps the cursor
    expect((await store.changes.register('events')).seq).toBe(2);
    await store.close();
    store = await Store.open(root);
    expect((await store.changes.cursor('events'))?.seq).toBe(2);
    expect((await store.stats()).consumers.map((c) => c.name)).toEqual(['events']);
    expect(await store.changes.slowest()).toBe(2);
    expect(await store.changes.remove('events')).toBe(true);
    expect(await store.changes.slowest()).toBeUndefined();
    await store.close();
  });

  it('two advances of one cursor at once (an explicit compaction\'s and the background compactor\'s) never leave it below the one acknowledged', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    await store.createMailbox('INBOX');
    for (let i = 0; i < 30; i++) await store.append('INBOX', msg(i));
    for (let k = 0; k < 10; k++) {
      const name = `c${k}`;
      await store.changes.register(name, 5);
      const [far, near] = await Promise.allSettled([store.changes.advance(name, 25), store.changes.advance(name, 15)]);
      expect(far.status).toBe('fulfilled');
      if (near.status === 'rejected') expect((near.reason as MailstoreError).code).toBe('INVALID'); // went back: refused
      expect((await store.changes.cursor(name))?.seq, `consumer ${name}`).toBe(25);
    }
    await store.close();
  });

  it('a damaged cursor file is CORRUPT, never read as seq 0', async () => {
    const root = tmpDir();
    const store = await Store.open(root, { create: true });
    await store.createMailbox('INBOX');
    await store.changes.register('backup', 1);
    const path = join(root, 'consumers', 'backup');
    writeFileSync(path, readFileSync(path, 'utf8').replace('"seq":1', '"seq":0'));
    expect(await codeOf(store.changes.cursor('backup'))).toBe('CORRUPT');
    // the message names the command that mends it ('remove it' said nothing of how: the file? the consumer?)
    expect(((await store.changes.cursor('backup').catch((e: unknown) => e)) as Error).message).toMatch(/'mailstore consumers --remove backup'/);
    await store.close();
  });

  it('a read-only open lists consumers but cannot move them', async () => {
    const root = tmpDir();
    let store = await Store.open(root, { create: true });
    await store.createMailbox('INBOX');
    await store.changes.register('events', 0);
    await store.close();
    store = await Store.open(root, { readOnly: true });
    expect((await store.changes.consumers()).length).toBe(1);
    expect(await codeOf(store.changes.advance('events', 1))).toBe('ACCESS');
    await store.close();
  });

  it('records a retirement removed are NOT_FOUND, not silently skipped', async () => {
    const root = tmpDir();
    const store = await Store.open(root, { create: true });
    await store.createMailbox('INBOX');
    await store.append('INBOX', msg(1));
    // what journal retirement leaves: the journal starts later than seq 1
    const journal = internals(store).journal as unknown as { segments: { firstSeq: number }[] };
    journal.segments[0].firstSeq = 2;
    expect(await codeOf(all(store.changes.read(0)))).toBe('NOT_FOUND');
    expect((await all(store.changes.read(1))).length).toBeGreaterThan(0);
    journal.segments[0].firstSeq = 1;
    await store.close();
  });
});

describe('runConsumer', () => {
  it('wakes on a commit, advances after the handler, and retries a requeued round', async () => {
    const root = tmpDir();
    const store = await Store.open(root, { create: true });
    await store.createMailbox('INBOX');
    const seen: number[] = [];
    let refusals = 1;
    const stop = new AbortController();
    const errors: unknown[] = [];
    const done = runConsumer(store.changes, 'test', async (changes) => {
      if (changes.some((c) => c.ops.some((o) => o.op === 'message.add')) && refusals-- > 0) {
        throw new MailstoreError('LOCKED', 'mailbox busy: try again');
      }
      for (const c of changes) seen.push(c.seq);
    }, { signal: stop.signal, onError: (e) => errors.push(e) });
    // registered before the append (100 ms was waited for it: under load the consumer could
    // register after it, at the newest record, and never see the append)
    await until(async () => (await store.changes.cursor('test')) !== undefined, 'the consumer registered');
    const { uid } = await store.append('INBOX', msg(1));
    expect(uid).toBe(1);
    const target = store.changes.lastSeq;
    // a poll of 2 s at most, then the assertion: a loaded machine took longer (the bound a hang guard)
    await until(async () => (await store.changes.cursor('test'))?.seq === target, 'the consumer handled the append', 60_000);
    expect(seen).toEqual([target]); // the refused round came again, once handled
    expect(refusals).toBe(-1);
    stop.abort();
    store.changes.wakeAll();
    await done;
    expect(errors).toEqual([]);
    await store.close();
  });

  it('stops and reports a failure that is not temporary, without moving the cursor', async () => {
    const root = tmpDir();
    const store = await Store.open(root, { create: true });
    await store.createMailbox('INBOX');
    await store.changes.register('bad', 0);
    const errors: unknown[] = [];
    await runConsumer(store.changes, 'bad', async () => { throw new Error('handler bug'); }, { onError: (e) => errors.push(e) });
    expect(errors).toHaveLength(1);
    expect((await store.changes.cursor('bad'))?.seq).toBe(0);
    await store.close();
  });
});

describe('consumers registered at once', () => {
  it('the first two of a store (consumers/ not there yet) are both registered: the second mkdir is no failure', async () => {
    const store = await Store.open(tmpDir(), { create: true, autoSnapshot: false });
    await store.createMailbox('INBOX');
    // before: both saw no consumers/, the slower mkdir failed EEXIST and its consumer was not registered
    await Promise.all(['indexer', 'notifier', 'search'].map((name) => store.changes.register(name, 0)));
    expect((await store.changes.consumers()).map((c) => [c.name, c.seq])).toEqual([['indexer', 0], ['notifier', 0], ['search', 0]]);
    await store.close();
  });
});

describe('two runners of one consumer name', () => {
  it('the second is refused LOCKED at once; the first goes on and handles every record; once it stops the name runs again', async () => {
    const root = tmpDir();
    const store = await Store.open(root, { create: true });
    await store.createMailbox('INBOX');
    await store.changes.register('indexer', store.changes.lastSeq);
    const seen: number[] = [];
    const errors: unknown[] = [];
    const stop = new AbortController();
    const first = runConsumer(store.changes, 'indexer', async (changes) => { for (const c of changes) seen.push(c.seq); }, { signal: stop.signal, onError: (e) => errors.push(e) });
    // before: both ran, each handled a share, and the slower one's advance failed INVALID ("cannot go back") outside onError
    await expect(runConsumer(store.changes, 'indexer', async () => {})).rejects.toMatchObject({ code: 'LOCKED', message: expect.stringMatching(/consumer indexer is running already/) });
    const from = store.changes.lastSeq;
    for (let i = 0; i < 20; i++) await store.append('INBOX', msg(i));
    const target = store.changes.lastSeq;
    await until(async () => (await store.changes.cursor('indexer'))?.seq === target, 'the first runner handled every append', 60_000);
    expect(seen).toEqual(Array.from({ length: target - from }, (_, i) => from + 1 + i));
    stop.abort();
    store.changes.wakeAll();
    await first;
    expect(errors).toEqual([]);
    const again = new AbortController();
    const next = runConsumer(store.changes, 'indexer', async () => {}, { signal: again.signal });
    again.abort();
    store.changes.wakeAll();
    await next; // the name was released: no LOCKED
    await store.close();
  });
});

describe('state snapshot', () => {
  it('holds exactly the state at its seq while writers go on', async () => {
    const root = tmpDir();
    const store = await Store.open(root, { create: true });
    await store.createMailbox('INBOX');
    for (let i = 1; i <= 20; i++) await store.append('INBOX', msg(i));
    const db = internals(store).db;
    const snapshot = await snapshotState(db);
    const seq = snapshot.appliedSeq;
    expect(seq).toBe(store.changes.lastSeq);
    // writes after the snapshot must not show in it
    for (let i = 21; i <= 30; i++) await store.append('INBOX', msg(i));
    await store.expunge('INBOX', [1, 2, 3]);
    const ops: Op[] = [];
    for await (const op of snapshot.ops) ops.push(op);
    expect(ops[0]).toEqual({ op: 'state.begin', appliedSeq: seq });
    const messages = ops.flatMap((o) => (o.op === 'state.messages' ? o.messages : []));
    expect(messages.map((m) => m[0])).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const box = ops.find((o) => o.op === 'state.mailbox');
    expect(box && box.op === 'state.mailbox' && box.info.messages).toBe(20);
    await store.close();
  });
});

describe('checkpoint ops', () => {
  // checkpointOps loops over LevelDB's batches (an async yield per entry cost the full read of a
  // 20k store ~30 % of its CPU): runs of one mailbox still end at a mailbox's end and at `per`
  // entries, wherever a batch ends
  it('groups each mailbox\'s messages in runs of at most checkpointEntriesPerRecord across batch boundaries', async () => {
    const a = Buffer.alloc(16, 0xaa), b = Buffer.alloc(16, 0xbb);
    const record = (uid: number): MessageRecord => ({ h: Buffer.alloc(32, uid), s: 100 + uid, d: 1_700_000_000_000 + uid, f: ['\\Seen'], m: uid });
    const entries: [Buffer, MessageRecord][] = [];
    for (let uid = 1; uid <= 9; uid++) entries.push([keys.message(a, uid), record(uid)]);
    for (let uid = 1; uid <= 3; uid++) entries.push([keys.message(b, uid), record(uid)]);
    const sizes = [2, 5, 1, 3, 1]; // batch ends in the middle of a run, at a run's end and at the mailbox's end
    const reader: IndexRangeReader = {
      entryBatches: <T>(range: { gte: Buffer }) => (async function* () {
        if (range.gte[0] !== SPACE.message) return;
        let at = 0;
        for (const size of sizes) { yield entries.slice(at, at + size).map(([key, value]) => [key, value]) as unknown as [Buffer, T][]; at += size; }
      })(),
    };
    const per = limits.checkpointEntriesPerRecord;
    limits.checkpointEntriesPerRecord = 4;
    const ops: Op[] = [];
    try {
      for await (const op of checkpointOps(reader, 7)) ops.push(op);
    } finally {
      limits.checkpointEntriesPerRecord = per;
    }
    const runs = ops.flatMap((op) => (op.op === 'state.messages' ? [[Buffer.from(op.id).toString('hex'), op.messages.map((m) => m[0])]] : []));
    expect(ops[0]).toEqual({ op: 'state.begin', appliedSeq: 7 });
    expect(runs).toEqual([
      [a.toString('hex'), [1, 2, 3, 4]], [a.toString('hex'), [5, 6, 7, 8]], [a.toString('hex'), [9]], [b.toString('hex'), [1, 2, 3]],
    ]);
    const messages = ops.flatMap((op) => (op.op === 'state.messages' ? op.messages : []));
    expect(messages.map((m) => [m[0], Buffer.from(m[1]).equals(Buffer.alloc(32, m[0])), m[2], m[5]])).toEqual(entries.map(([key, r]) => [messageKeyUid(key), true, r.s, r.m]));
  });
});

describe('consumer cursors on a failing disk', () => {
  it('EACCES and ENOSPC on consumers/ fail the cursor write with ACCESS / NO_SPACE, the old cursor stays, mail goes on', async () => {
    const { FaultFileSystem } = await import('../sim/faultfs.js');
    const root = tmpDir();
    const fs = new FaultFileSystem();
    let store = await Store.open(root, { create: true, fs, autoSnapshot: false });
    await store.createMailbox('INBOX');
    const first = await store.append('INBOX', msg(1));
    await store.changes.register('cleanup', 0);
    await store.changes.advance('cleanup', 1);
    for (let i = 2; i <= 4; i++) await store.append('INBOX', msg(i));
    for (const [fault, code] of [['EACCES', 'ACCESS'], ['ENOSPC', 'NO_SPACE'], ['EIO', 'IO']] as const) {
      fs.failAll(fault, { pathPrefix: join(root, 'consumers') });
      expect(await codeOf(store.changes.advance('cleanup', 3))).toBe(code);
      expect(await codeOf(store.changes.register('other', 0))).toBe(code);
      fs.clear();
      expect((await store.changes.cursor('cleanup'))?.seq).toBe(1); // the failed write left the old cursor
      expect(await store.changes.cursor('other')).toBeUndefined();
    }
    // delivery never depended on the cursor directory
    fs.failAll('EACCES', { pathPrefix: join(root, 'consumers') });
    const later = await store.append('INBOX', msg(5));
    fs.clear();
    await store.changes.advance('cleanup', 3);
    await store.close();
    store = await Store.open(root, { autoSnapshot: false });
    expect((await store.changes.cursor('cleanup'))?.seq).toBe(3);
    expect((await store.fetch('INBOX', first.uid)).equals(msg(1))).toBe(true);
    expect((await store.fetch('INBOX', later.uid)).equals(msg(5))).toBe(true);
    await store.close();
  });
});
