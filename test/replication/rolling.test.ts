// Rolling replication between two stores in temp directories: a replica starting from an empty
// directory ends in the same logical state with byte-identical packs; it catches up after being
// down; it refuses client writes; a wrong key or another store gets nothing.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { existsSync, rmSync } from 'node:fs';
import { Store } from '../../src/store/store.js';
import { startPrimary } from '../../src/replication/primary.js';
import { startReplica } from '../../src/replication/replica.js';
import { tmpDir } from '../helpers/tmp.js';
import { codeOf, keyFile, logicalState, msg, quiet, samePacks, until } from './helpers.js';

/** A primary store with an INBOX, serving replication on a loopback port, and where its replica goes. */
async function primaryWithInbox(packBytesMax: number) {
  const key = keyFile();
  const p = tmpDir('primary');
  const primaryStore = await Store.open(p, { create: true, packBytesMax });
  await primaryStore.createMailbox('INBOX');
  const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
  const address = `127.0.0.1:${(await primary.status()).port}`;
  return { key, p, primaryStore, primary, address, r: join(tmpDir('replica'), 'r') };
}

describe('rolling replication', () => {
  it('mirrors a primary from an empty directory: same state, same packs, same journal seqs', async () => {
    const key = keyFile();
    const p = tmpDir('primary');
    const primaryStore = await Store.open(p, { create: true });
    await primaryStore.createMailbox('user/alice/INBOX', { owner: 'alice' });
    for (let i = 1; i <= 20; i++) await primaryStore.append('user/alice/INBOX', msg(i), { flags: i % 2 ? ['\\Seen'] : [] });
    const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    const port = (await primary.status()).port;
    const r = join(tmpDir('replica'), 'r');
    const replica = await startReplica(r, { primary: `127.0.0.1:${port}`, keyFile: key, log: quiet });
    try {
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 15_000, 'initial catch-up');
      // live changes flow too
      await primaryStore.setFlags('user/alice/INBOX', [2, 4], { add: ['\\Flagged'] });
      await primaryStore.expunge('user/alice/INBOX', [3]);
      await primaryStore.createMailbox('user/alice/Sent', { owner: 'alice' });
      await primaryStore.setAcl('user/alice/Sent', 'bob', 'lr');
      await primaryStore.copy('user/alice/INBOX', [1, 2], 'user/alice/Sent');
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 15_000, 'live changes');
      expect(await logicalState(replica.store)).toEqual(await logicalState(primaryStore));
      expect(replica.store.storeId.equals(primaryStore.storeId)).toBe(true);
      expect(await replica.store.fetch('user/alice/INBOX', 7)).toEqual(msg(7));
      samePacks(p, r);
      const status = await primary.status();
      expect(status.replicas).toHaveLength(1);
      expect(status.replicas[0]).toMatchObject({ connected: true, seq: primaryStore.changes.lastSeq, lagRecords: 0, lagBytes: 0 });
      // a replica refuses client writes, reads are served
      expect(await codeOf(replica.store.append('user/alice/INBOX', msg(99)))).toBe('READ_ONLY_REPLICA');
      expect(await codeOf(replica.store.createMailbox('x'))).toBe('READ_ONLY_REPLICA');
    } finally {
      await replica.close();
      await primary.close();
      await primaryStore.close();
    }
    // and so does the CLI-like direct open of the replica directory
    const direct = await Store.open(r);
    try {
      expect(await codeOf(direct.append('user/alice/INBOX', msg(98)))).toBe('READ_ONLY_REPLICA');
      expect((await direct.status('user/alice/INBOX')).messages).toBe(19);
    } finally {
      await direct.close();
    }
  }, 40_000);

  it('catches up after being down, from its last seq and pack tails', async () => {
    const { key, p, primaryStore, primary, address, r } = await primaryWithInbox(4096);
    let replica = await startReplica(r, { primary: address, keyFile: key, log: quiet });
    try {
      for (let i = 1; i <= 10; i++) await primaryStore.append('INBOX', msg(i, 500));
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq);
      await replica.close();
      for (let i = 11; i <= 40; i++) await primaryStore.append('INBOX', msg(i, 500)); // several new packs meanwhile
      await primaryStore.expunge('INBOX', [5, 6]);
      replica = await startReplica(r, { primary: address, keyFile: key, log: quiet });
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq);
      expect(await logicalState(replica.store)).toEqual(await logicalState(primaryStore));
      samePacks(p, r);
      for (let i = 1; i <= 40; i++) if (i !== 5 && i !== 6) expect(await replica.store.fetch('INBOX', i)).toEqual(msg(i, 500));
    } finally {
      await replica.close();
      await primary.close();
      await primaryStore.close();
    }
  }, 40_000);

  it('a replica whose index was lost (rebuilt from its journal) is resent its packs from the start and stays identical', async () => {
    const { key, p, primaryStore, primary, address, r } = await primaryWithInbox(8192);
    let replica = await startReplica(r, { primary: address, keyFile: key, log: quiet });
    try {
      for (let i = 1; i <= 15; i++) await primaryStore.append('INBOX', msg(i, 900));
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq);
      await replica.close();
      rmSync(join(r, 'index'), { recursive: true, force: true });
      for (let i = 16; i <= 25; i++) await primaryStore.append('INBOX', msg(i, 900));
      replica = await startReplica(r, { primary: address, keyFile: key, log: quiet });
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq);
      expect(await logicalState(replica.store)).toEqual(await logicalState(primaryStore));
      samePacks(p, r);
    } finally {
      await replica.close();
      await primary.close();
      await primaryStore.close();
    }
  }, 30_000);

  it('a replica with the wrong key gets nothing, and the refusal is logged', async () => {
    const dir = tmpDir('keys');
    const key = keyFile(dir);
    const bad = keyFile(dir);
    const primaryStore = await Store.open(tmpDir('primary'), { create: true });
    await primaryStore.createMailbox('user/alice/INBOX');
    const lines: string[] = [];
    const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: (l) => lines.push(l) });
    const r = join(tmpDir('replica'), 'r');
    try {
      const code = await codeOf(startReplica(r, { primary: `127.0.0.1:${(await primary.status()).port}`, keyFile: bad, log: quiet }));
      expect(code).toBe('REFUSED');
      expect(existsSync(join(r, 'STORE'))).toBe(false);
      await until(() => lines.some((l) => /refused .*handshake failed/.test(l)), 5000, 'a logged refusal');
    } finally {
      await primary.close();
      await primaryStore.close();
    }
  }, 20_000);

  it('an existing store that is not a replica is refused; a replica of another store is refused', async () => {
    const key = keyFile();
    const a = await Store.open(tmpDir('a'), { create: true });
    const primaryA = await startPrimary(a, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    const b = await Store.open(tmpDir('b'), { create: true });
    const primaryB = await startPrimary(b, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    const other = tmpDir('standalone');
    await (await Store.open(other, { create: true })).close();
    const r = join(tmpDir('replica'), 'r');
    try {
      expect(await codeOf(startReplica(other, { primary: `127.0.0.1:${(await primaryA.status()).port}`, keyFile: key, log: quiet }))).toBe('REFUSED');
      const replica = await startReplica(r, { primary: `127.0.0.1:${(await primaryA.status()).port}`, keyFile: key, log: quiet });
      await replica.close();
      const lines: string[] = [];
      const wrong = await startReplica(r, { primary: `127.0.0.1:${(await primaryB.status()).port}`, keyFile: key, log: (l) => lines.push(l) });
      await until(() => lines.some((l) => /another store is refused/.test(l)), 5000, 'wrong-store refusal');
      await wrong.close();
    } finally {
      await primaryA.close();
      await primaryB.close();
      await a.close();
      await b.close();
    }
  }, 20_000);
});
