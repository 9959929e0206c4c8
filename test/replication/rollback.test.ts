// A primary put back to an older image (a VM rolled back to yesterday, a disk snapshot restored)
// while its replica is ahead: the primary's next changes reuse seqs the replica holds for others.
// Once the primary had written past the replica's seq, the replica was sent the records after it
// and applied a mix of the two histories without a word (uid 4 one message on the primary,
// another on the replica), or halted on a record naming a mailbox only the new history has.
import { cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { startPrimary, type PrimaryHandle } from '../../src/replication/primary.js';
import { startReplica } from '../../src/replication/replica.js';
import { tmpDir } from '../helpers/tmp.js';
import { keyFile, msg, until } from './helpers.js';

describe('a primary rolled back to an older image while its replica is ahead', () => {
  it('the replica is refused (REFUSED, diverged), keeps what it had, and promote gives back every change acknowledged before the rollback', async () => {
    const key = keyFile();
    const p = tmpDir('primary');
    const image = join(tmpDir('image'), 'p');
    const lines: string[] = [];
    const log = (line: string) => { lines.push(line); };
    let primaryStore = await Store.open(p, { create: true });
    await primaryStore.createMailbox('INBOX');
    let primary: PrimaryHandle = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log });
    const port = (await primary.status()).port;
    const restart = async () => {
      primaryStore = await Store.open(p);
      primary = await startPrimary(primaryStore, { listen: `127.0.0.1:${port}`, keyFile: key, log });
    };
    const replica = await startReplica(join(tmpDir('replica'), 'r'), { primary: `127.0.0.1:${port}`, keyFile: key, log });
    try {
      for (let i = 1; i <= 3; i++) await primaryStore.append('INBOX', msg(i));
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq);
      await primary.close();
      await primaryStore.close();
      cpSync(p, image, { recursive: true }); // the image the VM is later rolled back to
      await restart();
      for (let i = 4; i <= 6; i++) await primaryStore.append('INBOX', msg(i)); // acknowledged, and on the replica
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq);
      const replicaSeq = replica.store.changes.lastSeq;
      await primary.close();
      await primaryStore.close();
      rmSync(p, { recursive: true });
      cpSync(image, p, { recursive: true });
      // the rolled-back primary takes mail before its replica reconnects: seqs past the replica's
      primaryStore = await Store.open(p);
      for (let i = 7; i <= 12; i++) await primaryStore.append('INBOX', msg(i));
      await primary.close();
      await primaryStore.close();
      await restart();
      await until(() => /REFUSED: .*diverged/.test(replica.status().lastError ?? ''), 15_000, 'the refusal');
      expect(replica.status().lastError).toMatch(/journal record \d+ is not this primary's record/);
      expect(lines.some((line) => /diverged/.test(line) && /promote/.test(line))).toBe(true);
      expect(replica.store.changes.lastSeq).toBe(replicaSeq);
      expect((await replica.store.status('INBOX')).messages).toBe(6);
      // promoted while the rolled-back primary runs, ahead of it: not followed (its records are not
      // the replica's), every mailbox renewed (its readers saw uid 4 as msg(7))
      const promoted = await replica.promote();
      expect(promoted).toMatchObject({ oldPrimaryFenced: true, oldPrimarySeq: primaryStore.changes.lastSeq, heldSeq: replicaSeq, uidValidity: 'new' });
      expect(lines.some((line) => /caught up with the old primary/.test(line))).toBe(false);
      for (let uid = 1; uid <= 6; uid++) expect(await replica.store.fetch('INBOX', uid)).toEqual(msg(uid));
      expect((await replica.store.append('INBOX', msg(13))).uid).toBe(7);
    } finally {
      await replica.close();
      await primary.close();
      await primaryStore.close();
    }
  }, 60_000);

  it('promoted while the rolled-back primary still runs, having given fewer seqs than the replica holds: every mailbox gets a new uidValidity (its readers saw uid 4 as other mail)', async () => {
    const key = keyFile();
    const p = tmpDir('primary');
    const image = join(tmpDir('image'), 'p');
    let primaryStore = await Store.open(p, { create: true });
    await primaryStore.createMailbox('INBOX');
    let primary: PrimaryHandle = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: () => undefined });
    const port = (await primary.status()).port;
    const replica = await startReplica(join(tmpDir('replica'), 'r'), { primary: `127.0.0.1:${port}`, keyFile: key, log: () => undefined });
    try {
      for (let i = 1; i <= 3; i++) await primaryStore.append('INBOX', msg(i));
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq);
      await primary.close();
      await primaryStore.close();
      cpSync(p, image, { recursive: true });
      primaryStore = await Store.open(p);
      primary = await startPrimary(primaryStore, { listen: `127.0.0.1:${port}`, keyFile: key, log: () => undefined });
      for (let i = 4; i <= 6; i++) await primaryStore.append('INBOX', msg(i));
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq);
      await primary.close();
      await primaryStore.close();
      rmSync(p, { recursive: true });
      cpSync(image, p, { recursive: true });
      primaryStore = await Store.open(p);
      await primaryStore.append('INBOX', msg(7)); // uid 4 there, read by a client; msg(4) is uid 4 on the replica
      const seen = await primaryStore.status('INBOX');
      primary = await startPrimary(primaryStore, { listen: `127.0.0.1:${port}`, keyFile: key, log: () => undefined });
      await until(() => /diverged/.test(replica.status().lastError ?? ''), 15_000, 'the refusal');
      const promoted = await replica.promote(); // the old primary answers its fence: seq 5, below the replica's 7
      expect(promoted).toMatchObject({ oldPrimaryFenced: true, oldPrimarySeq: primaryStore.changes.lastSeq, uidValidity: 'new' });
      expect(promoted.heldSeq).toBeGreaterThan(promoted.oldPrimarySeq!);
      expect((await replica.store.status('INBOX')).uidValidity).not.toBe(seen.uidValidity);
      for (let uid = 1; uid <= 6; uid++) expect(await replica.store.fetch('INBOX', uid)).toEqual(msg(uid));
    } finally {
      await replica.close();
      await primary.close();
      await primaryStore.close();
    }
  }, 60_000);
});
