// The replication commands of the built CLI on store directories (no daemon): replica status on a
// primary and a replica, replica check (exit 0 identical, 1 with differences), promote, xfer; a
// replica directory refuses writes from the CLI too.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { Store } from '../../src/store/store.js';
import { startPrimary } from '../../src/replication/primary.js';
import { startReplica } from '../../src/replication/replica.js';
import { readRole, writeRole } from '../../src/store/role.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { json, requireBuilt, run } from '../cli/helpers.js';
import { tmpDir } from '../helpers/tmp.js';
import { keyFile, msg, quiet, until } from './helpers.js';
import { unopenedRoot } from '../../src/store/unopened-root.js';

describe('replication commands', () => {
  it('status, check, a refused write, promote, xfer', async () => {
    requireBuilt();
    const key = keyFile();
    const p = tmpDir('primary');
    const primaryStore = await Store.open(p, { create: true });
    await primaryStore.createMailbox('user/bob/INBOX', { owner: 'bob' });
    for (let i = 1; i <= 5; i++) await primaryStore.append('user/bob/INBOX', msg(i));
    const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    const address = `127.0.0.1:${(await primary.status()).port}`;
    const r = join(tmpDir('replica'), 'r');
    const replica = await startReplica(r, { primary: address, keyFile: key, log: quiet });
    await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq);
    await replica.close();
    try {
      const status = await json(['replica', 'status', '--json'], { store: r });
      expect(status).toMatchObject({ role: 'replica', primary: address, lastSeq: primaryStore.changes.lastSeq });
      const check = await run(['replica', 'check', '--json'], { store: r });
      expect(check.code).toBe(0);
      expect(JSON.parse(check.stdout.toString())).toMatchObject({ identical: true, mailboxes: 1 });
      // the text names what it compared: a replica whose copy of a body was damaged is "identical" too (session 48)
      expect((await run(['replica', 'check'], { store: r })).stdout.toString()).toMatch(/: identical \(mailboxes, uids, flags and each message's hash; the stored bytes: 'mailstore scrub'\)/);
      const file = join(tmpDir('m'), 'm.eml');
      writeFileSync(file, msg(9));
      const refused = await run(['append', 'user/bob/INBOX', file], { store: r });
      expect(refused.code).toBe(3);
      expect(refused.stderr).toMatch(/READ_ONLY_REPLICA/);
      // a difference: exit 1, listed
      const role = (await readRole(nodeFileSystem, r))!;
      await writeRole(unopenedRoot(nodeFileSystem, r), { ...role, role: 'primary' });
      const tamper = await Store.open(r);
      await tamper.setFlags('user/bob/INBOX', [2], { add: ['\\Answered'] });
      await tamper.close();
      await writeRole(unopenedRoot(nodeFileSystem, r), role);
      const diff = await run(['replica', 'check'], { store: r });
      expect(diff.code).toBe(1);
      expect(diff.stdout.toString()).toMatch(/uid 2/);
      // promote, then the replica takes writes
      const promoted = await json(['promote', '--json'], { store: r });
      expect(promoted).toMatchObject({ epoch: 1, oldPrimaryFenced: true, uidValidity: 'kept', mailboxesRenewed: 0 });
      expect((await run(['append', 'user/bob/INBOX', file], { store: r })).code).toBe(0);
      expect(await json(['replica', 'status', '--json'], { store: r })).toMatchObject({ role: 'primary', epoch: 1 });
    } finally {
      await primary.close();
      await primaryStore.close();
    }
    // xfer from the promoted store to a third one
    const b = await Store.open(tmpDir('b'), { create: true });
    const target = await startPrimary(b, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    try {
      const moved = await json(['xfer', '--user', 'bob', '--to', `127.0.0.1:${(await target.status()).port}`, '--json'], { store: r });
      expect(moved).toMatchObject({ mailboxes: ['user/bob/INBOX'] });
      expect((await b.status('user/bob/INBOX')).messages).toBe(6);
      expect(await b.fetch('user/bob/INBOX', 6)).toEqual(msg(9));
    } finally {
      await target.close();
      await b.close();
    }
  }, 40_000);

  // status read every consumer cursor, so one damaged cursor (a replica's or another consumer's)
  // failed the whole command CORRUPT (exit 6) and showed no replica at all
  it('status: a damaged replica cursor is a finding of that replica (named, what to do, exit 1), the rest shown', async () => {
    requireBuilt();
    const dir = tmpDir('primary');
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    await store.append('INBOX', msg(1));
    for (const name of ['replica-aa11', 'replica-bb22', 'indexer']) await store.changes.register(name, 1);
    await store.close();
    for (const name of ['replica-aa11', 'indexer']) writeFileSync(join(dir, 'consumers', name), 'garbage\n');
    const asJson = await run(['replica', 'status', '--json'], { store: dir });
    expect(asJson.code, asJson.stderr.toString()).toBe(1);
    const status = JSON.parse(asJson.stdout.toString());
    expect(status.replicas.map((r: { nodeId: string }) => r.nodeId)).toEqual(['bb22']);
    expect(status.damagedCursors).toEqual([{ nodeId: 'aa11', path: join(dir, 'consumers', 'replica-aa11'), todo: expect.stringContaining("'mailstore consumers --remove replica-aa11'") }]);
    const text = await run(['replica', 'status'], { store: dir });
    expect(text.code).toBe(1);
    expect(text.stdout.toString()).toMatch(/replica bb22: seq 1/);
    expect(text.stdout.toString()).toMatch(new RegExp(`replica aa11: its cursor ${join(dir, 'consumers', 'replica-aa11')} is damaged: when the replica next connects, its primary keeps it in quarantine/ and writes it again .*'mailstore consumers --remove replica-aa11' forgets it`));
  }, 40_000);
});
