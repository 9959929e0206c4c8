// Counters scrub recomputes from the records and what --repair does when one has drifted: the
// mailboxes' highest modseqs against the store's next modseq (its seq plus the modseq offset);
// counters and refcounts written wrong into the journal itself, which an index rebuild gives again
// (Cyrus's `quota -f`).
import { describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { undumpMailboxes } from '../../src/store/mailbox-list.js';
import { MODSEQ_OFFSET_NAME } from '../../src/store/apply.js';
import { scrub } from '../../src/scrub/scrub.js';
import { isDamage } from '../../src/scrub/findings.js';
import { repair } from '../../src/scrub/repair.js';
import { getQuota, setQuota } from '../../src/store/quota.js';
import { hashBytes } from '../../src/hash/blake3.js';
import { keys } from '../../src/keys/index-keys.js';
import type { BlobRecord, Op } from '../../src/store/records.js';
import { tmpDir } from '../helpers/tmp.js';
import { recount } from '../helpers/recount.js';

const message = (i: number) => Buffer.from(`Subject: ${i}\r\n\r\nbody ${i}\r\n`);

/** Commits `ops` made from the committed index as one record, as a version with a counter bug wrote them. */
async function commitAsOlderVersion(store: Store, ops: (read: <T>(key: Buffer) => T | undefined) => Op[]): Promise<void> {
  await store.administration().mutate({ prepare: async ({ view }) => ({ ops: ops((key) => view.getNow(key)), result: undefined }) });
}

/** message.add of `bytes` (a blob the store holds) as uid `uid` of user/bob/INBOX. */
function addOf(read: <T>(key: Buffer) => T | undefined, uid: number, bytes: Buffer): Op {
  const id = Buffer.from(read<Buffer>(keys.name(['user', 'bob', 'INBOX']))!);
  const hash = hashBytes(bytes);
  const blob = read<BlobRecord>(keys.blob(hash))!;
  return { op: 'message.add', id, uid, hash, size: bytes.length, date: 0, flags: [], pack: blob.p, offset: blob.o };
}

describe('scrub and drifted counters', () => {
  it('a mailbox whose highest modseq is above the store\'s next one (the modseq offset lost) is damage; --repair raises the offset, so the next change is above it', async () => {
    const store = await Store.open(tmpDir('counters'), { create: true });
    try {
      await undumpMailboxes(store, [{ name: 'user/alice/INBOX', id: 'b1445cf8-5485-4288-bb46-f48aa6be0101', uidValidity: 7, uidNext: 1, highestModseq: 100_000, acl: {}, created: 1, owner: 'alice' }]);
      await store.append('user/alice/INBOX', message(1));
      const highest = (await store.status('user/alice/INBOX')).highestModseq;
      expect((await scrub(store)).findings.filter(isDamage)).toEqual([]);
      // the offset gone, as a --user restore before 3730a7b left it: the next change would get a modseq far below
      await store.administration().mutate({ prepare: async () => ({ ops: [{ op: 'meta.set', key: MODSEQ_OFFSET_NAME, value: null }], result: undefined }) });
      const before = await scrub(store);
      expect(before.findings.filter(isDamage)).toEqual([{ kind: 'modseq-ahead', mailbox: 'user/alice/INBOX', highestModseq: highest, nextModseq: expect.any(Number) }]);
      const repaired = await repair(store, before);
      expect(repaired.unrepaired).toEqual([]);
      await store.setFlags('user/alice/INBOX', 1, { add: ['\\Seen'] });
      expect((await store.messageInfo('user/alice/INBOX', 1)).modseq).toBeGreaterThan(highest);
      expect(await recount(store)).toEqual([]);
      expect((await scrub(store)).findings.filter(isDamage)).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it("counters and a refcount the journal itself holds wrong (one uid added twice in a record, as the XFER target wrote before f7916ea): --repair's rebuild gives them again, so it recounts them from the messages in one journaled record; quota usage is right, scrub clean, also after a rebuild", async () => {
    const dir = tmpDir('counters');
    const store = await Store.open(dir, { create: true });
    try {
      await store.createMailbox('user/bob/INBOX');
      await setQuota(store, 'user/bob', { messages: 3 });
      await store.append('user/bob/INBOX', message(1));
      await store.append('user/bob/INBOX', message(2));
      await commitAsOlderVersion(store, (read) => [addOf(read, 3, message(1)), addOf(read, 3, message(2))]);
      expect(await getQuota(store, 'user/bob')).toMatchObject({ usedMessages: 4 }); // three messages, and over its quota of 3
      const before = await scrub(store);
      expect(new Set(before.findings.filter(isDamage).map((f) => f.kind))).toEqual(new Set(['mailbox-counts', 'refcount-mismatch', 'index-journal-mismatch']));
      const repaired = await repair(store, before);
      expect(repaired.unrepaired).toEqual([]);
      expect(repaired.recounted).toEqual({ mailboxes: ['user/bob/INBOX'], blobs: 1 });
      expect(await recount(store)).toEqual([]);
      expect(await getQuota(store, 'user/bob')).toMatchObject({ usedMessages: 3 });
      for (const uid of [1, 2, 3]) expect(await store.fetch('user/bob/INBOX', uid)).toEqual(message(uid === 3 ? 2 : uid));
    } finally {
      await store.close();
    }
    rmSync(join(dir, 'index'), { recursive: true, force: true });
    const reopened = await Store.open(dir);
    try {
      expect(await recount(reopened)).toEqual([]);
      expect((await scrub(reopened)).findings.filter(isDamage)).toEqual([]);
    } finally {
      await reopened.close();
    }
  });

  it("a refcount the journal holds too low is raised to the messages that use the blob: compaction, which refused the store for good (its gate: refcounts that do not add up, 'run scrub --repair'), runs again and keeps the body the other message uses", async () => {
    const store = await Store.open(tmpDir('counters'), { create: true });
    try {
      await store.createMailbox('user/bob/INBOX');
      await store.append('user/bob/INBOX', message(1));
      await store.copy('user/bob/INBOX', 1, 'user/bob/INBOX');
      // as an older version's record might have put it: one reference for two messages
      await commitAsOlderVersion(store, (read) => {
        const hash = hashBytes(message(1));
        const blob = read<BlobRecord>(keys.blob(hash))!;
        return [{ op: 'state.blobs', blobs: [[hash, blob.p, blob.o, blob.l, 1]] }];
      });
      const repaired = await repair(store, await scrub(store));
      expect(repaired.unrepaired).toEqual([]);
      expect(repaired.recounted).toEqual({ mailboxes: [], blobs: 1 });
      await store.expunge('user/bob/INBOX', 1);
      await store.compact({ graceMs: 0 });
      expect(await store.fetch('user/bob/INBOX', 2)).toEqual(message(1));
      expect(await recount(store)).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('counters that disagree with the messages after a rebuild from a snapshot are left reported, not recounted: the snapshot copied an index, which may have lost messages its counters still count', async () => {
    const store = await Store.open(tmpDir('counters'), { create: true, journalSegmentBytesMax: 1024 });
    try {
      await store.createMailbox('user/bob/INBOX');
      await store.append('user/bob/INBOX', message(1));
      await store.append('user/bob/INBOX', message(2));
      await commitAsOlderVersion(store, (read) => [addOf(read, 3, message(1)), addOf(read, 3, message(2))]);
      for (let i = 0; i < 2; i++) {
        for (let j = 0; j < 20; j++) await store.setFlags('user/bob/INBOX', 1, { [j % 2 ? 'remove' : 'add']: ['\\Flagged'] });
        await store.snapshot();
      }
      expect((await store.stats()).journalFirstSeq).toBeGreaterThan(1); // the record with the drift is retired
      const repaired = await repair(store, await scrub(store));
      expect(repaired.recounted).toBeUndefined();
      expect(repaired.unrepaired.map((f) => f.kind)).toEqual(['mailbox-counts', 'refcount-mismatch']);
      expect((await store.status('user/bob/INBOX')).messages).toBe(4);
    } finally {
      await store.close();
    }
  });
});
