// The writer's pipelining: batches of one commit chain (an import) are refused once an earlier one
// failed, even when submitted while it was in flight; and an index batch still landing in LevelDB
// is seen by point and range reads, so an acknowledged change is never invisible.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import type { AppendResult } from '../../src/store/store.js';
import { IndexDb, IndexView } from '../../src/index/index-db.js';
import { MailstoreError } from '../../src/errors.js';
import type { CommitChain } from '../../src/store/writer.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { tmpDir } from '../helpers/tmp.js';
import { internalsOf } from '../helpers/internals.js';
import { keys } from '../../src/keys/index-keys.js';
import type { BlobRecord } from '../../src/store/records.js';

const msg = (text: string) => Buffer.from(`Subject: ${text}\r\n\r\n${text}\r\n`);

describe('commit chains', () => {
  it('a batch submitted while the one before it is written deduplicates against it (its blob entries read ahead are not trusted once that commit wrote them)', async () => {
    const fs = new FaultFileSystem();
    const store = await Store.open(tmpDir(), { create: true, fs });
    await store.createMailbox('INBOX');
    const chain: CommitChain = {};
    const first = Array.from({ length: 12 }, (_, i) => ({ bytes: msg(`m${i}`) }));
    const second = Array.from({ length: 12 }, (_, i) => ({ bytes: msg(i % 2 === 0 ? `m${i}` : `n${i}`) })); // every other one a copy
    let two: Promise<AppendResult[]> | undefined;
    fs.injectAt((op) => {
      // the first batch is prepared and being written: the second goes to the writer's next batch,
      // and its read ahead starts before the first's blob entries are in the index
      if (op.kind === 'write' && op.path.includes('journal') && !two) two = store.appendBatch('INBOX', second, { chain });
      return false;
    }, 'EIO');
    const a = await store.appendBatch('INBOX', first, { chain });
    expect(two).toBeDefined();
    const b = await two!;
    fs.clear();
    expect(a.every((r) => !r.deduplicated)).toBe(true);
    expect(b.map((r) => r.deduplicated)).toEqual(second.map((_, i) => i % 2 === 0));
    b.forEach((r, i) => { if (i % 2 === 0) expect(r.hash).toBe(a[i].hash); });
    const db = internalsOf(store).db;
    const refs = await Promise.all(a.map((r) => db.get<BlobRecord>(keys.blob(Buffer.from(r.hash, 'hex')))));
    expect(refs.map((blob) => blob?.r), 'one blob entry per body, counting both messages of a copy').toEqual(a.map((_, i) => (i % 2 === 0 ? 2 : 1)));
    expect((await store.status('INBOX')).messages).toBe(24);
    for (let uid = 13; uid <= 24; uid++) expect((await store.fetch('INBOX', uid)).equals(second[uid - 13].bytes)).toBe(true);
    await store.close();
  });

  it('a batch after a failed one of the same chain is refused with the same error; others commit', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    await store.createMailbox('INBOX');
    const chain: CommitChain = {};
    const first = store.appendBatch('Nowhere', [{ bytes: msg('a') }], { chain });
    const second = store.appendBatch('INBOX', [{ bytes: msg('b') }], { chain });
    const unchained = store.appendBatch('INBOX', [{ bytes: msg('c') }]);
    const error = await first.catch((e) => e);
    expect(error).toBeInstanceOf(MailstoreError);
    expect((error as MailstoreError).code).toBe('NOT_FOUND');
    await expect(second).rejects.toBe(error);
    expect((await unchained)[0].uid).toBe(1);
    const status = await store.status('INBOX');
    expect(status.messages).toBe(1);
    expect((await store.fetch('INBOX', 1)).toString()).toContain('Subject: c');
    await store.close();
  });

  it('a batch submitted while an earlier one of its chain is being written is refused when that write fails', async () => {
    const dir = tmpDir();
    const fs = new FaultFileSystem();
    const store = await Store.open(dir, { create: true, fs });
    await store.createMailbox('INBOX');
    const chain: CommitChain = {};
    let second: Promise<unknown> | undefined;
    fs.injectAt((op) => {
      if (op.kind !== 'write' || !op.path.includes('journal') || second) return false;
      second = store.appendBatch('INBOX', [{ bytes: msg('second') }], { chain });
      second.catch(() => undefined);
      return true;
    }, 'ENOSPC');
    const error = await store.appendBatch('INBOX', [{ bytes: msg('first') }], { chain }).catch((e) => e);
    expect((error as MailstoreError).code).toBe('NO_SPACE');
    expect(second).toBeDefined();
    await expect(second).rejects.toBe(error);
    fs.clear();
    expect((await store.status('INBOX')).messages).toBe(0);
    const [later] = await store.appendBatch('INBOX', [{ bytes: msg('later') }], { chain: {} });
    expect(later.uid).toBe(1);
    await store.close();
    const reopened = await Store.open(dir);
    expect((await reopened.status('INBOX')).messages).toBe(1);
    expect((await reopened.fetch('INBOX', 1)).toString()).toContain('later');
    await reopened.close();
  });
});

describe('index writes behind the commit', () => {
  it('an index write that fails after the journal commit: the caller had success, the store stops (CLOSED), a reopen replays it', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    const { db } = internalsOf(store);
    await db.settle(); // createMailbox's own index batch lands first (it is built after its callers were answered)
    // the index write behind the commit is a LevelDB chained batch (IndexDb.writeBehind): its first
    // write fails (in classic-level's _write, which the public write() and the raw path both reach)
    type Chained = { _write(options?: unknown): Promise<void> };
    const level = (db as unknown as { db: { batch(): Chained } }).db;
    const realBatch = level.batch.bind(level);
    let failed = 0;
    level.batch = () => {
      const batch = realBatch();
      if (failed++ === 0) {
        batch._write = async () => {
          throw Object.assign(new Error('EIO: simulated LevelDB write failure'), { code: 'EIO' });
        };
      }
      return batch;
    };
    const result = await store.append('INBOX', msg('durable'));
    expect(result.uid).toBe(1);
    // that batch is handed to LevelDB while a later commit's fdatasync runs, or within
    // limits.indexBehindMs (one-file commits let the index writes of a few ms merge), so appends
    // may still be acknowledged (durable in the journal) until the failure stops the store
    const acknowledged = ['durable'];
    let closed: unknown;
    const deadline = Date.now() + 10_000;
    for (let i = 0; closed === undefined && Date.now() < deadline; i++) {
      await store.append('INBOX', msg(`after ${i}`)).then(() => { acknowledged.push(`after ${i}`); }, (e: unknown) => { closed = e; });
    }
    expect(closed).toBeInstanceOf(MailstoreError);
    expect((closed as MailstoreError).code).toBe('CLOSED');
    expect(acknowledged.length).toBeGreaterThanOrEqual(1);
    await store.close().catch(() => undefined);
    const reopened = await Store.open(dir);
    expect((await reopened.status('INBOX')).messages).toBe(acknowledged.length); // every acknowledged append, replayed
    for (const [i, tag] of acknowledged.entries()) expect((await reopened.fetch('INBOX', i + 1)).toString()).toContain(tag);
    await reopened.close();
  });

  it('a batch handed to LevelDB is read by getNow and entries before it lands', async () => {
    const db = await IndexDb.open(join(tmpDir(), 'index'), true);
    const key = (i: number) => Buffer.from(`k${String(i).padStart(4, '0')}`);
    const pending = new Map<string, unknown>();
    for (let i = 0; i < 2000; i++) pending.set(key(i).toString('latin1'), { n: i });
    const { landed } = await db.writeBehind(pending);
    expect(db.getNow<{ n: number }>(key(1999))).toEqual({ n: 1999 });
    let seen = 0;
    for await (const [, value] of db.entries<{ n: number }>({ prefix: Buffer.from('k') })) expect(value.n).toBe(seen++);
    expect(seen).toBe(2000);
    await landed;
    const view = new IndexView(db);
    view.del(key(5));
    await db.writeBehind(view.takePending());
    expect(db.getNow(key(5))).toBeUndefined();
    await db.settle();
    expect(db.getNow(key(5))).toBeUndefined();
    expect(db.getNow(key(6))).toEqual({ n: 6 });
    await db.close();
  });

  it('every acknowledged append is visible at once to fetch, messages() and status()', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    await store.createMailbox('INBOX');
    for (let i = 1; i <= 50; i++) {
      const result = await store.append('INBOX', msg(`m${i}`));
      expect(result.uid).toBe(i);
      expect((await store.status('INBOX')).messages).toBe(i);
      expect((await store.fetch('INBOX', i)).toString()).toContain(`m${i}`);
      let n = 0;
      for await (const _ of store.messages('INBOX')) n++;
      expect(n).toBe(i);
      const read = [];
      for await (const { info, body } of store.readMessages('INBOX', { fromUid: i })) read.push([info.uid, body.toString()]);
      expect(read).toEqual([[i, msg(`m${i}`).toString()]]);
    }
    await store.close();
  });
});
