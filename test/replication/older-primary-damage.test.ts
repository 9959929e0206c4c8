// A replica's damaged held frame (REPLICATION-PENDING) against a primary at a newer epoch that
// predates session 49: such a primary ignores the hello's heldDamage (mocked here: its check is a
// no-op), so the replica refuses it itself after the welcome, before it takes anything or the
// epoch (replica.ts refuseDamagedHeld); the file is kept and the primary is told.
import { describe, expect, it, vi } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { startPrimary } from '../../src/replication/primary.js';
import { startReplica } from '../../src/replication/replica.js';
import { PENDING_FILE, PendingRounds } from '../../src/replication/pending-rounds.js';
import { tmpDir } from '../helpers/tmp.js';
import { keyFile, msg, until } from './helpers.js';

vi.mock('../../src/replication/history.js', async (original) => ({ ...(await original<typeof import('../../src/replication/history.js')>()), refuseDamagedHeld: () => undefined }));

describe('a damaged held frame and a newer-epoch primary before session 49', () => {
  it('is refused by the replica itself: nothing taken, the epoch kept, the file kept, the primary told', async () => {
    const key = keyFile();
    const primaryStore = await Store.open(tmpDir('primary'), { create: true });
    await primaryStore.createMailbox('INBOX');
    const primaryLines: string[] = [];
    const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: (l) => primaryLines.push(l) });
    const address = `127.0.0.1:${(await primary.status()).port}`;
    const replicaRoot = join(tmpDir('replica'), 'r');
    let replica = await startReplica(replicaRoot, { primary: address, keyFile: key, log: () => undefined });
    try {
      await primaryStore.append('INBOX', msg(1));
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq);
      const held = replica.store.changes.lastSeq;
      // a round held from the primary of epoch 0, then damaged (a flipped byte)
      await replica.stop();
      const pending = new PendingRounds(replica.store);
      await pending.beginSession();
      await pending.add({ records: [{ seq: held + 1, payload: Buffer.from('a change the old primary acknowledged') }], packs: [], tails: [] });
      await pending.close();
      await replica.close();
      const path = join(replicaRoot, PENDING_FILE);
      const bytes = readFileSync(path);
      bytes[10] ^= 0x40;
      writeFileSync(path, bytes);
      // the primary now stands for one promoted since (epoch 1), with a record of its own for that seq
      await primaryStore.replication().setRole({ ...primaryStore.replication().role()!, epoch: 1 });
      await primaryStore.append('INBOX', msg(2));
      const lines: string[] = [];
      replica = await startReplica(replicaRoot, { primary: address, keyFile: key, log: (l) => lines.push(l) });
      await until(() => lines.some((l) => /REFUSED/.test(l)) || replica.store.changes.lastSeq > held, 15_000, 'the refusal (or the record taken)');
      expect(replica.store.changes.lastSeq).toBe(held); // without the replica's own check: the primary's record, the file emptied
      expect(lines.find((l) => /REFUSED/.test(l))).toMatch(new RegExp(`REPLICATION-PENDING is damaged at byte 0 \\(after seq ${held}\\).*${address.replace(/\./g, '\\.')} \\(epoch 1, promoted since\\)`));
      expect(replica.store.replication().role()!.epoch).toBe(0);
      expect(readFileSync(path).equals(bytes)).toBe(true);
      await until(() => primaryLines.some((l) => /reports: .*REPLICATION-PENDING is damaged at byte 0/.test(l)), 15_000, "the primary's log line");
    } finally {
      await replica.close();
      await primary.close();
      await primaryStore.close();
    }
  }, 60_000);
});
