// A primary put back to an older disk image at the same epoch, and a replica holding tentative
// rounds (REPLICATION-PENDING) that primary had said committed (a later frame's `c`), so it may have
// acknowledged them. Before session 49 the held-round check ran only for a primary at a newer epoch:
// the rolled-back primary's next record for those seqs replaced them and emptied the file.
import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeCbor } from '../../src/index/codec.js';
import { Store } from '../../src/store/store.js';
import { startPrimary } from '../../src/replication/primary.js';
import { startReplica, type ReplicaHandle } from '../../src/replication/replica.js';
import { PENDING_FILE, PendingRounds, encodeRound, lastSeqOf, readPendingRounds, type TentativeRound } from '../../src/replication/pending-rounds.js';
import { tmpDir } from '../helpers/tmp.js';
import { msg, quiet, startPair, until } from './helpers.js';

describe('a primary put back to an older image at the same epoch', () => {
  it('is refused by a replica holding rounds it said committed: nothing taken, the file kept byte for byte, the refusal naming promote', async () => {
    const pair = await startPair({ fill: async (store) => { for (let i = 0; i < 3; i++) await store.append('INBOX', msg(i)); } });
    const primaryDir = pair.primaryStore.root;
    await until(() => pair.replica.store.changes.lastSeq === pair.primaryStore.changes.lastSeq, 15_000, 'the replica');
    const seq = pair.primaryStore.changes.lastSeq;
    await pair.close();
    const older = join(tmpDir('older-image'), 'p');
    cpSync(primaryDir, older, { recursive: true }); // the image the primary is put back to
    // the primary takes two more changes, acknowledged; its replica held them as tentative rounds,
    // the second carrying the commit of the first (c), and stopped before committing them
    const later = await Store.open(primaryDir);
    const records: { seq: number; payload: Buffer }[] = [];
    try {
      for (let i = 3; i < 5; i++) await later.append('INBOX', msg(i));
      for (let s = seq + 1; s <= later.changes.lastSeq; s++) records.push({ seq: s, payload: (await later.replication().journal.readRecordAt(s))! });
    } finally {
      await later.close();
    }
    expect(records.length).toBeGreaterThanOrEqual(2);
    const replicaStore = await Store.open(pair.replicaDir);
    try {
      const pending = new PendingRounds(replicaStore);
      await pending.beginSession();
      let c: number | undefined;
      for (const record of records) {
        const round: TentativeRound = { records: [record], packs: [], tails: [] };
        await pending.add(round, encodeCbor({ t: 'tentative', ...encodeRound(round), ...(c ? { c } : {}) }));
        c = record.seq;
      }
      await pending.close();
    } finally {
      await replicaStore.close();
    }
    const file = readFileSync(join(pair.replicaDir, PENDING_FILE));
    // the older image serves, at epoch 0 as before, and takes a delivery of its own under seq + 1
    const store = await Store.open(older);
    const primaryLines: string[] = [];
    const primary = await startPrimary(store, { listen: '127.0.0.1:0', keyFile: pair.key, log: (l) => primaryLines.push(l) });
    await store.append('INBOX', msg(100));
    const lines: string[] = [];
    let replica: ReplicaHandle | undefined;
    try {
      replica = await startReplica(pair.replicaDir, { primary: `127.0.0.1:${(await primary.status()).port}`, keyFile: pair.key, log: (l) => lines.push(l) });
      await until(() => lines.some((l) => /REFUSED/.test(l)) || replica!.store.changes.lastSeq > seq, 15_000, 'the refusal (or the rounds replaced)');
      expect(replica.store.changes.lastSeq).toBe(seq); // before: the older image's record for seq + 1 taken, the file emptied
      expect(lines.find((l) => /REFUSED/.test(l))).toMatch(new RegExp(`holds seq ${seq + 1}, which this primary said had committed here.*older disk image.*'mailstore promote' on the replica`));
      expect(primaryLines.some((l) => new RegExp(`holds seq ${seq + 1}`).test(l))).toBe(true);
      expect((await readPendingRounds(replica.store)).rounds.map(lastSeqOf)).toEqual(records.map((r) => r.seq));
      await replica.close();
      replica = undefined;
      expect(readFileSync(join(pair.replicaDir, PENDING_FILE)).equals(file)).toBe(true);
    } finally {
      await replica?.close();
      await primary.close();
      await store.close();
    }
  }, 60_000);
});
