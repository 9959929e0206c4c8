// The group-commit writer's contract: a caller's error stays that caller's, and a broken invariant
// (an assertion while a batch is prepared, applied or written) stops the store with HALTED and
// writes nothing of the batch, instead of being handed to one caller while the view keeps half of it.
import { describe, expect, it } from 'vitest';
import { Store, type StoreOptions } from '../../src/store/store.js';
import { PACKED } from '../helpers/packed.js';
import { AssertionFailure, MailstoreError, assert, fromSystemError } from '../../src/errors.js';
import { exitCodeFor } from '../../src/cli/exit-codes.js';
import type { PrepareContext, Writer } from '../../src/store/writer.js';
import type { Journal } from '../../src/journal/journal.js';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hashBytes } from '../../src/hash/blake3.js';
import { keys } from '../../src/keys/index-keys.js';
import { tmpDir } from '../helpers/tmp.js';
import { codeOf } from '../helpers/errors.js';
import { limits } from '../../src/limits.js';

const msg = (i: number | string) => Buffer.from(`From: a@example.org\r\nSubject: ${i}\r\n\r\nbody ${i}\r\n`);


async function storeWithOne(options: StoreOptions = {}): Promise<{ root: string; store: Store; writer: Writer }> {
  const root = tmpDir();
  const store = await Store.open(root, { create: true, ...options });
  await store.createMailbox('INBOX');
  await store.append('INBOX', msg(1));
  return { root, store, writer: (store as unknown as { writer: Writer }).writer };
}

async function reopenedState(root: string) {
  const store = await Store.open(root);
  try {
    const status = await store.status('INBOX');
    const bodies = [];
    for await (const m of store.readMessages('INBOX')) bodies.push(m.body.toString());
    return { messages: status.messages, uidNext: status.uidNext, bodies, degraded: store.health.degraded };
  } finally {
    await store.close();
  }
}

describe('writer: fail-stop on a broken invariant', () => {
  it('an op that fails its live apply halts the store; the append in the same batch is not written', async () => {
    const { root, store, writer } = await storeWithOne();
    const ghost = Buffer.alloc(16, 7); // a mailbox id that does not exist
    const bad = writer.submit({ prepare: async () => ({ ops: [{ op: 'message.flags', id: ghost, set: [[1, ['\\Seen']]] }], result: 0 }) });
    const good = store.append('INBOX', msg(2)); // same tick: same batch
    expect(await codeOf(bad)).toBe('HALTED');
    expect(await codeOf(good)).toBe('HALTED');
    expect(await codeOf(store.append('INBOX', msg(3)))).toBe('HALTED');
    await store.close();
    const after = await reopenedState(root);
    expect(after.messages).toBe(1);
    expect(after.uidNext).toBe(2);
    expect(after.bodies).toEqual([msg(1).toString()]);
  });

  it('an assertion while the journal is written halts (HALTED, exit 70), never IO; a reopen serves what was acknowledged', async () => {
    const { root, store, writer } = await storeWithOne();
    const journal = (writer as unknown as { journal: Journal }).journal;
    journal.write = async () => { assert(false, 'injected: record does not match its header'); };
    const error = await store.append('INBOX', msg(2)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MailstoreError);
    expect((error as MailstoreError).code).toBe('HALTED');
    expect((error as MailstoreError).cause).toBeInstanceOf(AssertionFailure);
    expect(exitCodeFor(error)).toBe(70);
    await store.close();
    expect((await reopenedState(root)).bodies).toEqual([msg(1).toString()]);
  });

  it("a MailstoreError from one mutation's prepare rejects that caller only; the rest of the batch commits", async () => {
    const { root, store } = await storeWithOne();
    const [missing, ok] = await Promise.allSettled([store.append('NOPE', msg(2)), store.append('INBOX', msg(3))]);
    expect(missing.status === 'rejected' && (missing.reason as MailstoreError).code).toBe('NOT_FOUND');
    expect(ok.status).toBe('fulfilled');
    await store.append('INBOX', msg(4));
    await store.close();
    expect((await reopenedState(root)).bodies).toEqual([1, 3, 4].map((i) => msg(i).toString()));
  });
});

describe('writer: pack bytes written before the batch is whole are taken back when it is not written', () => {
  // prepareBatch starts the pack write once the batch's last mutation placed its blobs, before its
  // ops are applied and its records encoded: a batch that goes no further must leave the pack as
  // it was (the bytes are past the tail, unreferenced, and would otherwise sit there until a scan).
  const packOf = (root: string) => join(root, 'packs', readdirSync(join(root, 'packs')).filter((name) => name.endsWith('.pack')).sort().pop()!);
  const placing = (tail: Buffer) => async (ctx: PrepareContext) => {
    ctx.packs.reserve(hashBytes(tail), tail);
    return ctx;
  };

  async function storeWithPack(): Promise<{ root: string; store: Store; writer: Writer; size: number }> {
    const root = tmpDir();
    const store = await Store.open(root, { create: true });
    await store.createMailbox('INBOX');
    await store.appendBatch('INBOX', [{ bytes: msg(1) }, { bytes: msg(2) }]); // a batch: its bodies go to a pack
    return { root, store, writer: (store as unknown as { writer: Writer }).writer, size: statSync(packOf(root)).size };
  }

  it('a batch that places a blob but has no ops to record writes nothing', async () => {
    const { root, store, writer, size } = await storeWithPack();
    const nothing = await writer.submit({ prepare: async (ctx) => { await placing(Buffer.alloc(100_000, 1))(ctx); return { ops: [], result: 'nothing' }; } });
    expect(nothing).toBe('nothing');
    expect(statSync(packOf(root)).size, 'the early write taken back').toBe(size);
    await store.appendBatch('INBOX', [{ bytes: msg(3) }, { bytes: msg(4) }]);
    await store.close();
    expect((await reopenedState(root)).bodies).toEqual([1, 2, 3, 4].map((i) => msg(i).toString()));
  });

  it('a batch whose last ops fail their live apply halts with nothing written', async () => {
    const { root, store, writer, size } = await storeWithPack();
    const ghost = Buffer.alloc(16, 7); // a mailbox id that does not exist
    const bad = writer.submit({ prepare: async (ctx) => { await placing(Buffer.alloc(100_000, 2))(ctx); return { ops: [{ op: 'message.flags', id: ghost, set: [[1, ['\\Seen']]] }], result: 0 }; } });
    expect(await codeOf(bad)).toBe('HALTED');
    expect(statSync(packOf(root)).size, 'the early write taken back').toBe(size);
    await store.close();
    const after = await reopenedState(root);
    expect(after.bodies).toEqual([1, 2].map((i) => msg(i).toString()));
    expect(after.degraded).toBe(false);
  });
});

describe('errors: a bug is never dressed up as the world', () => {
  it('fromSystemError rethrows an AssertionFailure instead of mapping it to IO', () => {
    const bug = new AssertionFailure('x');
    expect(() => fromSystemError(bug, 'writing', '/p')).toThrow(bug);
    expect(fromSystemError(Object.assign(new Error('disk'), { code: 'ENOSPC' }), 'writing', '/p').code).toBe('NO_SPACE');
  });

  it('NO_SPACE says what to free: ENOSPC with bytes free is inodes, EDQUOT is the user\'s quota, EFBIG the file size limit', () => {
    const full = fromSystemError(Object.assign(new Error('disk'), { code: 'ENOSPC' }), 'writing', '/p');
    expect(full.message).toMatch(/free space or inodes \('df -i'\)/);
    const quota = fromSystemError(Object.assign(new Error('quota'), { code: 'EDQUOT' }), 'writing', '/p');
    expect(quota.code).toBe('NO_SPACE');
    expect(quota.message).toMatch(/disk quota/);
    // a process file size limit (ulimit -f) with the disk half empty: freeing space would not help
    const limit = fromSystemError(Object.assign(new Error('too big'), { code: 'EFBIG' }), 'writing', '/p');
    expect(limit.code).toBe('NO_SPACE');
    expect(limit.message).toMatch(/file size limit: raise 'ulimit -f' or systemd's LimitFSIZE=/);
    expect(limit.message).not.toMatch(/df -i/);
  });
});

describe('dedup never trusts a copy no message uses', () => {
  it('bytes appended again after their only message was expunged and their record damaged are written anew and read back exact', async () => {
    const { root, store } = await storeWithOne(PACKED); // it damages the pack record of a message delivered alone
    const body = msg('again');
    const first = await store.append('INBOX', body);
    await store.expunge('INBOX', [first.uid]);
    const blob = (await store.maintenance().index.get<{ p: number; o: number }>(keys.blob(Buffer.from(first.hash, 'hex'))))!;
    const pack = store.maintenance().packs.path(blob.p);
    const bytes = readFileSync(pack);
    bytes[blob.o + 60] ^= 0xff; // inside the body of the unreferenced record
    writeFileSync(pack, bytes);
    const second = await store.append('INBOX', body);
    expect(second.deduplicated).toBe(false);
    expect((await store.fetch('INBOX', second.uid)).equals(body)).toBe(true);
    const third = await store.append('INBOX', body); // now referenced again: deduplicated onto the new copy
    expect(third.deduplicated).toBe(true);
    await store.close();
    const reopened = await Store.open(root);
    try {
      expect((await reopened.fetch('INBOX', third.uid)).equals(body)).toBe(true);
      expect(reopened.health.degraded).toBe(false);
    } finally {
      await reopened.close();
    }
  });
});

describe('writer: group commit across round trips', () => {
  // 16 writers that each send their next append one or three turns of the event loop after the last
  // was answered (as a daemon's clients come back a socket round trip later): the writer waits for
  // them (limits.commitGatherMs) instead of splitting them into two groups that alternate.
  async function mutationsPerCommit(writers: number, rounds: number): Promise<{ perCommit: number; commits: number }> {
    const root = tmpDir();
    const batches: number[] = [];
    // a wait long enough that a loaded machine's scheduling cannot end it before the late half is back
    // (the gather is off by default: limits.commitGatherWritersMin; this turns it on at 8 writers)
    const tunable = limits as { commitGatherMs: number; commitGatherWritersMin: number };
    const { commitGatherMs: gatherMs, commitGatherWritersMin: writersMin } = tunable;
    tunable.commitGatherMs = 500;
    tunable.commitGatherWritersMin = 8;
    const store = await Store.open(root, { create: true, onCommit: (_first, _last, mutations) => { batches.push(mutations); } });
    try {
      await store.createMailbox('INBOX');
      batches.length = 0;
      await Promise.all(Array.from({ length: writers }, async (_, w) => {
        for (let r = 0; r < rounds; r++) {
          await store.append('INBOX', msg(`${w}.${r}`));
          // half of them come back a turn after their answer, the other half three turns after
          for (let turn = 0; turn < (w % 2 === 0 ? 1 : 3); turn++) await new Promise((next) => setImmediate(next));
        }
      }));
      expect((await store.status('INBOX')).messages).toBe(writers * rounds);
    } finally {
      tunable.commitGatherMs = gatherMs;
      tunable.commitGatherWritersMin = writersMin;
      await store.close();
    }
    return { perCommit: batches.reduce((a, b) => a + b, 0) / batches.length, commits: batches.length };
  }

  it('16 writers coming back one or three turns later share a commit (most of them per batch), not two alternating halves', async () => {
    const { perCommit, commits } = await mutationsPerCommit(16, 12);
    // without the gather the first batch takes 1 and the writers settle into alternating groups
    expect(perCommit, `${commits} commits for 192 appends`).toBeGreaterThanOrEqual(12);
  });

  it('one writer never waits: every append is its own commit', async () => {
    const { perCommit, commits } = await mutationsPerCommit(1, 20);
    expect(commits).toBe(20);
    expect(perCommit).toBe(1);
  });
});

describe('the store stopping itself is told (StoreOptions.onStop)', () => {
  it('a journal write that fails and cannot be taken back stops the store: onStop once, then CLOSED for every change until a reopen, which keeps what was acknowledged', async () => {
    const { FaultFileSystem } = await import('../sim/faultfs.js');
    const root = tmpDir();
    const fs = new FaultFileSystem();
    const stops: MailstoreError[] = [];
    let store = await Store.open(root, { create: true, fs, autoSnapshot: false, onStop: (error) => stops.push(error) });
    await store.createMailbox('INBOX');
    const kept = await store.append('INBOX', Buffer.from('kept\r\n'));
    fs.failAll('EIO', { pathPrefix: join(root, 'journal'), ops: ['write', 'truncate'] });
    expect(await codeOf(store.append('INBOX', Buffer.from('failed\r\n')))).toBe('IO');
    fs.clear();
    // the journal could not cut the failed write: before, the store went on failing CLOSED call by
    // call while nothing told its owner (a daemon serving only LMTP answered 451 forever)
    expect(stops.map((e) => e.code)).toEqual(['CLOSED']);
    expect(await codeOf(store.append('INBOX', Buffer.from('after\r\n')))).toBe('CLOSED');
    expect(await codeOf(store.setFlags('INBOX', kept.uid, { add: ['\\Seen'] }))).toBe('CLOSED');
    expect(stops).toHaveLength(1);
    await store.close().catch(() => undefined);
    store = await Store.open(root, { fs });
    expect((await store.fetch('INBOX', kept.uid)).toString()).toBe('kept\r\n');
    expect((await store.append('INBOX', Buffer.from('again\r\n'))).uid).toBeGreaterThan(kept.uid);
    await store.close();
  });
});
