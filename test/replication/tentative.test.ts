// Tentative rounds (pending-rounds.ts): with a synchronous replica the primary ships a batch once
// its own writes are done and while its fdatasyncs run, and the replica holds it durable but uncommitted until the
// primary's commit notice. A primary whose journal write or sync then fails (as in a crash before
// its commit) must leave the replica a prefix of its history: the round is never committed or
// shown there, and the primary's own next record for that seq replaces it. A replica promoted while it holds a round
// whose commit notice never came commits it (it may have been acknowledged).
import { describe, expect, it } from 'vitest';
import { join, sep } from 'node:path';
import { Store } from '../../src/store/store.js';
import type { FileHandle, FileSystem } from '../../src/fs/filesystem.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { startPrimary } from '../../src/replication/primary.js';
import { startReplica, type ReplicaHandle } from '../../src/replication/replica.js';
import { checkReplica } from '../../src/replication/check.js';
import { lastSeqOf, readPendingRounds } from '../../src/replication/pending-rounds.js';
import { limits } from '../../src/limits.js';
import { tmpDir } from '../helpers/tmp.js';
import { codeOf, keyFile, msg, quiet, samePacks, until } from './helpers.js';

/**
 * nodeFileSystem whose next journal fsync (`sync`) or write (`write`: write or writev), once armed, runs `hook` (which may throw or hang) instead;
 * writevDurable (write and flush in one call) fails in its write or in its flush likewise.
 */
function journalFaultFs(member: 'sync' | 'write'): { fs: FileSystem; arm: (hook: () => Promise<void>) => void; fired: () => string | undefined } {
  let armed: (() => Promise<void>) | undefined;
  let fired: string | undefined;
  const journal = `${sep}journal${sep}`;
  const fs = new Proxy(nodeFileSystem, {
    get(target, name, receiver) {
      const value = Reflect.get(target, name, receiver);
      if (name !== 'open') return typeof value === 'function' ? value.bind(target) : value;
      return async (path: string, mode: never) => {
        const handle = await target.open(path, mode);
        if (!path.includes(journal)) return handle;
        return new Proxy(handle, {
          get(h, key) {
            const value = Reflect.get(h, key, h);
            if (key === 'writevDurable') {
              // an inline delivery's write and flush in one call: a write fault comes before its
              // `written` (the round is not sent), a sync fault after it (the round went out)
              return async (parts: Buffer[], position: number, written?: () => void) => {
                const hook = armed;
                if (!hook) return (value as FileHandle['writevDurable']).call(h, parts, position, written);
                armed = undefined;
                fired = 'writevDurable';
                if (member === 'sync') {
                  await h.writev(parts, position);
                  written?.();
                }
                return hook();
              };
            }
            const hooked = member === 'write' ? key === 'write' || key === 'writev' : key === member;
            if (!hooked) return typeof value === 'function' ? value.bind(h) : value;
            return async (...args: unknown[]) => {
              const hook = armed;
              armed = undefined;
              if (hook) fired = String(key);
              if (hook) return hook();
              return (value as (...a: unknown[]) => Promise<void>).apply(h, args);
            };
          },
        });
      };
    },
  }) as FileSystem;
  return { fs, arm: (hook) => { armed = hook; }, fired: () => fired };
}

/** Until the replica holds seq as a tentative round, durable in its pending file. */
async function heldTentative(replica: ReplicaHandle, seq: number): Promise<void> {
  await until(async () => (await readPendingRounds(replica.store)).rounds.some((r) => lastSeqOf(r) === seq), 15_000, `tentative round ${seq} on the replica`);
}

async function pair(failing: 'sync' | 'write' = 'sync') {
  const key = keyFile();
  const faults = journalFaultFs(failing);
  const primaryRoot = tmpDir('primary');
  const primaryStore = await Store.open(primaryRoot, { create: true, fs: faults.fs });
  await primaryStore.createMailbox('INBOX');
  const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, syncReplicas: 1, syncFallback: 'refuse', syncWaitMs: 20_000, log: quiet });
  const address = `127.0.0.1:${(await primary.status()).port}`;
  const replicaRoot = join(tmpDir('replica'), 'r');
  const replica = await startReplica(replicaRoot, { primary: address, keyFile: key, log: quiet });
  await until(async () => (await primary.status()).replicas.some((r) => r.connected));
  await primaryStore.append('INBOX', msg(1)); // a new pack: an ordinary round
  await primaryStore.append('INBOX', msg(2)); // shipped as a tentative round
  return { key, faults, primaryRoot, primaryStore, primary, address, replicaRoot, replica };
}

describe('tentative rounds of a synchronous replica', () => {
  for (const [failing, inThread] of [['sync', false], ['write', false], ['sync', true], ['write', true]] as const) {
    it(`a round whose journal ${failing} failed on the primary${inThread ? ' (write and flush in one call in its thread)' : ''} is never committed or shown on the replica; the primary's own record replaces it`, async () => {
      const tunable = limits as { journalInThreadFlushBytesMax: number };
      const saved = tunable.journalInThreadFlushBytesMax;
      tunable.journalInThreadFlushBytesMax = inThread ? 1 << 20 : 0;
      const { key, faults, primaryRoot, primaryStore, primary, address, replicaRoot, replica } = await pair(failing);
      try {
        const committed = primaryStore.changes.lastSeq;
        await until(() => replica.store.changes.lastSeq === committed);
        const doomed = committed + 1;
        faults.arm(async () => {
          // a sync fails once the round was shipped and is durable on the replica; a write fails
          // before any round goes out (the round is sent once the writes are done, writer.ts)
          if (failing === 'sync') await heldTentative(replica, doomed);
          throw Object.assign(new Error(`EIO: injected journal ${failing} failure`), { code: 'EIO' });
        });
        expect(await codeOf(primaryStore.append('INBOX', msg(3)))).toBe('IO');
        // in one call, the round is sent between the write and the flush; else after the write, as the flush starts
        expect(faults.fired()).toBe(inThread ? 'writevDurable' : failing === 'sync' ? 'sync' : 'writev');
        expect(primaryStore.changes.lastSeq).toBe(committed);
        if (failing === 'write') expect((await readPendingRounds(replica.store)).rounds.some((r) => lastSeqOf(r) === doomed)).toBe(false);
        // never committed or shown on the replica
        expect(replica.store.changes.lastSeq).toBe(committed);
        expect((await replica.store.status('INBOX')).messages).toBe(2);
        // the primary goes on: its own record for that seq is the one the replica commits
        await until(async () => (await primary.status()).replicas.some((r) => r.connected), 15_000, 'the replica reconnected');
        await primaryStore.append('INBOX', msg(4));
        expect(primaryStore.changes.lastSeq).toBe(doomed);
        await until(() => replica.store.changes.lastSeq === doomed);
        const uids = async (store: Store) => { const out = []; for await (const m of store.messages('INBOX')) out.push(m.uid); return out; };
        expect(await uids(replica.store)).toEqual(await uids(primaryStore));
        const last = (await uids(primaryStore)).at(-1)!;
        expect(await replica.store.fetch('INBOX', last)).toEqual(msg(4));
        expect((await checkReplica(replica.store, { primary: address, keyFile: key })).identical).toBe(true);
        await replica.stop();
        samePacks(primaryRoot, replicaRoot);
      } finally {
        tunable.journalInThreadFlushBytesMax = saved;
        await replica.close();
        await primary.close();
        await primaryStore.close();
      }
    }, 60_000);
  }

  it('promote commits a round the replica holds durable whose commit notice never came', async () => {
    const { faults, primaryStore, primary, replica } = await pair();
    let release!: () => void;
    const tunable = limits as { promoteFenceAnswerMs: number };
    const answerMs = tunable.promoteFenceAnswerMs;
    tunable.promoteFenceAnswerMs = 500; // the old primary's writer hangs in its sync: it is fenced, and cannot say its last seq
    try {
      const committed = primaryStore.changes.lastSeq;
      await until(() => replica.store.changes.lastSeq === committed);
      faults.arm(async () => {
        await heldTentative(replica, committed + 1);
        await new Promise<void>((resolve) => { release = resolve; }); // the primary "dies" before its commit
      });
      const inDoubt = primaryStore.append('INBOX', msg(3)).catch((error: unknown) => error);
      await until(() => release !== undefined, 15_000, 'the tentative round on the replica');
      expect(replica.store.changes.lastSeq).toBe(committed); // held, not committed, while it follows
      const promoted = await replica.promote();
      expect(promoted.seq).toBe(committed + 3); // the round, the mailboxes' new uidValidity, then the epoch record
      expect(promoted).toMatchObject({ heldSeq: committed + 1, uidValidity: 'new' });
      expect((await replica.store.status('INBOX')).messages).toBe(3);
      expect(await replica.store.fetch('INBOX', 3)).toEqual(msg(3));
      expect((await readPendingRounds(replica.store)).rounds).toEqual([]);
      // the old primary's sync completes: the change is acknowledged (the replica acknowledged the
      // round before it went) or, when the session's end came first, fails UNAVAILABLE saying it may
      // have committed; either way it is on the promoted replica
      release();
      await primary.close();
      const outcome = await inDoubt;
      if (outcome instanceof Error) expect(outcome).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/may have committed/) });
      else expect(outcome).toMatchObject({ uid: 3 });
    } finally {
      tunable.promoteFenceAnswerMs = answerMs;
      release?.();
      await replica.close();
      await primary.close();
      await primaryStore.close();
    }
  }, 60_000);
});
