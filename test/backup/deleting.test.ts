// Backups of a store caught in the middle of a mailbox deletion (deleteMailbox: an intent record
// frees the name, the messages are expunged in chunks, a done record removes the mailbox). The
// journal writes are held after the first chunk, so every backup here reads the state with the
// mailbox marked deleting and some of its messages still in the index: a full one, an incremental
// one on a parent from before the deletion, and then, once the deletion finished, an incremental
// one on each mid-deletion parent, after messages with the bytes of the deleting mailbox's
// messages arrived elsewhere (blobs those parents named but never copied). Each restores exactly
// the mailboxes that are not being deleted, and the repositories check clean.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/backup/backup.js';
import { checkRepository } from '../../src/backup/check.js';
import type { FileHandle, FileSystem } from '../../src/fs/filesystem.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { limits } from '../../src/limits.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { dump, fill, openRepo, restoredDump, source } from './helpers.js';

/**
 * The real file system, with the journal segments' writes held once `holdAfter(n)` let n more
 * through: a commit then waits inside its journal write (its index changes not applied) until
 * `release`. Readers of the index and of the journal's committed records are not held.
 */
function journalGate() {
  let allowed = Infinity;
  let held: (() => void) | undefined;
  let gate: Promise<void> | undefined;
  let reached: () => void = () => undefined;
  const reachedOnce = new Promise<void>((resolve) => { reached = resolve; });
  const pass = async (): Promise<void> => {
    if (allowed > 0) { allowed--; return; }
    if (!gate) gate = new Promise<void>((resolve) => { held = resolve; });
    reached();
    await gate;
  };
  const wrap = (handle: FileHandle): FileHandle => new Proxy(handle, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== 'function') return value;
      if (prop === 'write' || prop === 'writev' || prop === 'writevDurable') {
        return async (...args: unknown[]) => { await pass(); return (value as (...a: unknown[]) => unknown).apply(target, args); };
      }
      return (value as (...a: unknown[]) => unknown).bind(target);
    },
  });
  const fs = new Proxy(nodeFileSystem, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (prop === 'open') {
        return async (path: string, mode: Parameters<FileSystem['open']>[1]) => {
          const handle = await target.open(path, mode);
          return /\/journal\/[0-9a-f]+\.jnl$/.test(path) ? wrap(handle) : handle;
        };
      }
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  }) as FileSystem;
  return {
    fs,
    /** From now on, `n` more journal writes go through and the next one waits. */
    holdAfter(n: number): Promise<void> { allowed = n; return reachedOnce; },
    release(): void { allowed = Infinity; held?.(); },
  };
}

describe('a backup of a mailbox being deleted', () => {
  it('leaves the deleting mailbox out of full and incremental snapshots, restores the rest exactly, and builds on such a parent', async () => {
    const dir = tmpDir('bkdel');
    const gate = journalGate();
    const saved = limits.deleteChunkMessages;
    const tunable = limits as { deleteChunkMessages: number };
    tunable.deleteChunkMessages = 4;
    const store = await Store.init(join(dir, 's'), { fs: gate.fs, inlineBodyBytesMax: 0 });
    let deletion: Promise<unknown> | undefined;
    try {
      await store.createMailbox('INBOX');
      await store.createMailbox('Trash');
      const inbox = await fill(store, 'INBOX', 12);
      const trash = await fill(store, 'Trash', 20, 100);
      // a Trash message with an INBOX message's bytes: one blob, which INBOX still needs
      await store.appendBatch('Trash', [{ bytes: inbox[0]! }]);
      const repo = await openRepo(join(dir, 'repo'));
      const full = await openRepo(join(dir, 'repo-full'));
      const before = (await runBackup(source(store), repo)).snapshot;
      const inboxOnly = await dump(store, (name) => name === 'INBOX');
      // delivered to Trash after that backup: the incremental run below reads it again under the
      // deleting mailbox (its tip names the blob) but never copies it
      const late = Buffer.from('Subject: late\r\n\r\ndelivered to Trash after the first backup\r\n');
      await store.appendBatch('Trash', [{ bytes: late }]);

      // the intent record and the first chunk of expunges commit, the next write waits
      const held = gate.holdAfter(2);
      deletion = store.deleteMailbox('Trash');
      await held;
      await expect(store.status('Trash')).rejects.toMatchObject({ code: 'NOT_FOUND' });
      const state = await store.maintenance().snapshotState();
      let deleting: { deleting?: boolean; messages: number } | undefined;
      for await (const op of state.ops) if (op.op === 'state.mailbox' && op.info.deleting) deleting = op.info;
      expect(deleting?.deleting).toBe(true); // caught mid-deletion: messages left under a deleting mailbox
      expect(deleting!.messages).toBeGreaterThan(0);

      const mid = await runBackup(source(store), repo);
      expect(mid.parent).toBe(before);
      expect(mid.fullReadReason).toBeUndefined();
      expect({ mailboxes: mid.mailboxes, messages: mid.messages, newBlobs: mid.newBlobs }).toEqual({ mailboxes: 1, messages: 12, newBlobs: 0 });
      const midFull = await runBackup(source(store), full);
      expect({ mailboxes: midFull.mailboxes, messages: midFull.messages, blobs: midFull.blobs, newBlobs: midFull.newBlobs }).toEqual({ mailboxes: 1, messages: 12, blobs: 12, newBlobs: 12 });

      gate.release();
      expect(await deletion).toEqual({ messages: 22 });
      deletion = undefined;
      // a new message, and the bytes of two Trash messages the mid-deletion parents still listed
      // under the deleting mailbox: `late` was never copied into `repo`, neither was in `full`
      await store.appendBatch('INBOX', [{ bytes: Buffer.from('Subject: after\r\n\r\nthe deletion finished\r\n') }, { bytes: trash[19]! }, { bytes: late }]);
      const after = await runBackup(source(store), repo);
      expect(after.parent).toBe(mid.snapshot);
      expect(after.fullReadReason).toBeUndefined();
      expect({ mailboxes: after.mailboxes, messages: after.messages, newBlobs: after.newBlobs }).toEqual({ mailboxes: 1, messages: 15, newBlobs: 2 });
      const afterFull = await runBackup(source(store), full);
      expect(afterFull.parent).toBe(midFull.snapshot);
      expect(afterFull.fullReadReason).toBeUndefined();
      expect({ messages: afterFull.messages, newBlobs: afterFull.newBlobs }).toEqual({ messages: 15, newBlobs: 3 });
      const now = await dump(store);

      expect(await restoredDump(repo, mid.snapshot, join(dir, 'r-mid'))).toEqual(inboxOnly);
      expect(await restoredDump(full, midFull.snapshot, join(dir, 'r-mid-full'))).toEqual(inboxOnly);
      expect(await restoredDump(repo, after.snapshot, join(dir, 'r-after'))).toEqual(now);
      expect(await restoredDump(full, afterFull.snapshot, join(dir, 'r-after-full'))).toEqual(now);
      expect(await restoredDump(repo, before, join(dir, 'r-before'))).toHaveProperty('Trash');
      for (const r of [repo, full]) {
        expect((await checkRepository(r, { readData: true })).findings.filter((f) => f.damage)).toEqual([]);
        await r.close();
      }
    } finally {
      gate.release();
      await deletion?.catch(() => undefined);
      tunable.deleteChunkMessages = saved;
      await store.close();
    }
  });
});
