// replica check: 0 differences after catch-up; a replica changed behind its primary's back is found
// out, down to the messages (uid, hash, flags, modseq), and the mailbox-level attributes. The
// catch-up wait, and the primary's durable cursor of a replica, under a wall clock stepped back.
import { describe, expect, it, vi } from 'vitest';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { startPrimary } from '../../src/replication/primary.js';
import { startReplica } from '../../src/replication/replica.js';
import { checkReplica } from '../../src/replication/check.js';
import { readRole, writeRole } from '../../src/store/role.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { tmpDir } from '../helpers/tmp.js';
import { keys } from '../../src/keys/index-keys.js';
import { mailboxDigests } from '../../src/replication/digest.js';
import { IndexView } from '../../src/index/index-db.js';
import type { MessageRecord } from '../../src/store/records.js';
import { keyFile, msg, quiet, until } from './helpers.js';
import { unopenedRoot } from '../../src/store/unopened-root.js';

describe('replica check', () => {
  it('finds no difference after catch-up, and narrows a divergence down to the messages', async () => {
    const key = keyFile();
    const primaryStore = await Store.open(tmpDir('primary'), { create: true });
    await primaryStore.createMailbox('user/alice/INBOX', { owner: 'alice' });
    await primaryStore.createMailbox('user/alice/Archive', { owner: 'alice' });
    for (let i = 1; i <= 300; i++) await primaryStore.appendBatch('user/alice/Archive', [{ bytes: msg(i) }]);
    for (let i = 1; i <= 10; i++) await primaryStore.append('user/alice/INBOX', msg(1000 + i));
    const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    const address = `127.0.0.1:${(await primary.status()).port}`;
    const r = join(tmpDir('replica'), 'r');
    try {
      const replica = await startReplica(r, { primary: address, keyFile: key, log: quiet });
      await primaryStore.setFlags('user/alice/Archive', [10, 20], { add: ['\\Seen'] });
      const clean = await checkReplica(replica.store, { primary: address, keyFile: key });
      expect(clean).toMatchObject({ identical: true, mailboxes: 2, differences: [] });
      expect(clean.replicaSeq).toBe(primaryStore.changes.lastSeq);
      await replica.close();
      // change the replica behind the primary's back (as damage or a bug would)
      const role = (await readRole(nodeFileSystem, r))!;
      await writeRole(unopenedRoot(nodeFileSystem, r), { ...role, role: 'primary' });
      const tampered = await Store.open(r);
      await tampered.setFlags('user/alice/Archive', [123], { add: ['\\Deleted'] });
      await tampered.expunge('user/alice/Archive', [250]);
      await tampered.setAcl('user/alice/INBOX', 'bob', 'lr');
      await tampered.close();
      await writeRole(unopenedRoot(nodeFileSystem, r), role);
      const stale = await Store.open(r);
      try {
        const found = await checkReplica(stale, { primary: address, keyFile: key, catchUpMs: 0 });
        expect(found.identical).toBe(false);
        const archive = found.differences.find((d) => d.mailbox === 'user/alice/Archive' && d.kind === 'messages')!;
        expect(archive.messages!.map((m) => m.uid)).toEqual([123, 250]);
        expect(archive.messages![0].replica![2]).toContain('\\Deleted');
        expect(archive.messages![1].replica).toBeNull();
        expect(found.differences.some((d) => d.mailbox === 'user/alice/INBOX' && d.kind === 'attributes' && /acl/.test(d.detail!))).toBe(true);
        // a message record changed under the kept digest (not through apply): --scan recomputes and finds it
        const db = stale.replication().db;
        const archiveId = (await mailboxDigests(db)).find((m) => m.name === 'user/alice/Archive')!.id;
        const recordKey = keys.message(Buffer.from(archiveId, 'hex'), 7);
        const view = new IndexView(db);
        view.put(recordKey, { ...db.getNow<MessageRecord>(recordKey)!, f: ['\\Answered'] });
        await view.flush();
        const scanned = await checkReplica(stale, { primary: address, keyFile: key, catchUpMs: 0, scan: true });
        const messages = scanned.differences.find((d) => d.mailbox === 'user/alice/Archive' && d.kind === 'messages')!;
        expect(messages.messages!.map((m) => m.uid)).toEqual([7, 123, 250]);
      } finally {
        await stale.close();
      }
    } finally {
      await primary.close();
      await primaryStore.close();
    }
  }, 30_000);

  it('a replica that does not catch up is compared after catchUpMs though the wall clock stepped back an hour meanwhile', async () => {
    await withPrimaryAndClock(async ({ primaryStore, address, key, stepMs }) => {
      const r = join(tmpDir('replica'), 'r');
      const replica = await startReplica(r, { primary: address, keyFile: key, log: quiet });
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq);
      await replica.close();
      await primaryStore.append('INBOX', msg(1)); // the replica, closed, never gets it
      const behind = await Store.open(r);
      try {
        const wait = behind.changes.wait.bind(behind.changes);
        vi.spyOn(behind.changes, 'wait').mockImplementation((seq, ms) => { stepMs(-3600_000); return wait(seq, ms); }); // NTP steps back once it waits
        const hung = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('still waiting after 5 s')), 5000).unref());
        const result = await Promise.race([checkReplica(behind, { primary: address, keyFile: key, catchUpMs: 300 }), hung]);
        expect(result.identical).toBe(false);
        expect(result.replicaSeq).toBeLessThan(result.primarySeq);
      } finally {
        await behind.close();
      }
    });
  });
});

describe("a replica's durable cursor on the primary", () => {
  it('follows the acks within replicaCursorWriteMs though the wall clock stepped back an hour after it was last written', async () => {
    await withPrimaryAndClock(async ({ primaryStore, address, key, stepMs }) => {
      const replica = await startReplica(join(tmpDir('replica'), 'r'), { primary: address, keyFile: key, log: quiet });
      try {
        const cursorName = `replica-${replica.store.replication().role()!.nodeId}`;
        const durableSeq = async () => (await primaryStore.changes.cursor(cursorName))?.seq ?? 0;
        await primaryStore.append('INBOX', msg(1));
        await until(async () => (await durableSeq()) === primaryStore.changes.lastSeq, 5000, 'the first cursor write');
        stepMs(-3600_000); // NTP steps back an hour
        await primaryStore.append('INBOX', msg(2));
        await until(async () => (await durableSeq()) === primaryStore.changes.lastSeq, 5000, 'the cursor after the step');
      } finally {
        await replica.close();
      }
    });
  });
});

/** A primary with an empty INBOX, serving; Date.now off by what `stepMs` last set (0 at first) while `fn` runs. */
async function withPrimaryAndClock(fn: (setup: { primaryStore: Store; address: string; key: string; stepMs: (ms: number) => void }) => Promise<void>): Promise<void> {
  const key = keyFile();
  const primaryStore = await Store.open(tmpDir('primary'), { create: true });
  await primaryStore.createMailbox('INBOX');
  const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
  let offsetMs = 0;
  const clock = vi.spyOn(Date, 'now').mockImplementation(() => new Date().getTime() + offsetMs);
  try {
    await fn({ primaryStore, address: `127.0.0.1:${(await primary.status()).port}`, key, stepMs: (ms) => { offsetMs = ms; } });
  } finally {
    clock.mockRestore();
    await primary.close();
    await primaryStore.close();
  }
}
