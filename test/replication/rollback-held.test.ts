// A primary put back to an older disk image at the same epoch, and a replica holding tentative
// rounds (REPLICATION-PENDING) that primary had said committed (a later frame's `c`), so it may have
// acknowledged them (session 50: or a `commit` frame had said so, now kept in the file too). Before
// session 49 the held-round check ran only for a primary at a newer epoch:
// the rolled-back primary's next record for those seqs replaced them and emptied the file.
import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeCbor } from '../../src/index/codec.js';
import { Store } from '../../src/store/store.js';
import { startPrimary, type PrimaryHandle } from '../../src/replication/primary.js';
import { startReplica, type ReplicaHandle } from '../../src/replication/replica.js';
import { PENDING_FILE, PendingRounds, encodeRound, lastSeqOf, readPendingRounds, type TentativeRound } from '../../src/replication/pending-rounds.js';
import { tmpDir } from '../helpers/tmp.js';
import { msg, quiet, startPair, until, type Pair } from './helpers.js';

describe('a primary put back to an older image at the same epoch', () => {
  it('is refused by a replica holding rounds it said committed: nothing taken, the file kept byte for byte, the refusal naming promote', async () => {
    const { pair, seq, primaryDir, older } = await pairAndOlderImage();
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
    const { refusal, primaryLines, held } = await refusedByOlderImage(pair, older, seq);
    expect(refusal).toMatch(/older disk image.*'mailstore promote' on the replica/);
    expect(primaryLines.some((l) => new RegExp(`holds seq ${seq + 1}`).test(l))).toBe(true);
    expect(held).toEqual(records.map((r) => r.seq));
  }, 60_000);

  // The notice that comes as a `commit` frame (no tentative round followed within
  // replicationCommitNoticeMs) was kept in memory only: a replica whose own commit of the round
  // failed (its disk past the reserve) or that stopped first held an acknowledged round the file
  // named no commit for, and the rolled-back primary's record for that seq replaced it.
  it('is refused too when the commit notice came as a commit frame and the replica\'s own commit failed (its disk past the reserve)', async () => {
    const { pair, seq, primaryDir, older } = await pairAndOlderImage();
    // synchronous now: one acknowledged delivery, held as a tentative round, its commit a `commit` frame
    const later = await Store.open(primaryDir);
    const laterPrimary = await startPrimary(later, { listen: '127.0.0.1:0', keyFile: pair.key, syncReplicas: 1, syncFallback: 'refuse', log: quiet });
    const lines: string[] = [];
    let replica: ReplicaHandle | undefined = await startReplica(pair.replicaDir, { primary: `127.0.0.1:${(await laterPrimary.status()).port}`, keyFile: pair.key, log: (l) => lines.push(l) });
    try {
      await until(async () => (await laterPrimary.status()).replicas.some((r) => r.connected), 15_000, 'the replica connected');
      await replica.store.setFreeSpaceReserve(2 * (await replica.store.freeSpace()).freeBytes!); // its own commit meets the reserve
      expect(await later.append('INBOX', msg(3))).toMatchObject({ uid: 4 });
      await until(() => lines.some((l) => /NO_SPACE/.test(l)), 15_000, 'the replica\'s commit refused at its reserve');
      expect(replica.store.changes.lastSeq).toBe(seq);
      await replica.stop();
      await replica.store.setFreeSpaceReserve(undefined); // room again: only the check keeps the older image's record out
      await replica.close();
      replica = undefined;
    } finally {
      await replica?.close();
      await laterPrimary.close();
      await later.close();
    }
    expect((await refusedByOlderImage(pair, older, seq)).held).toEqual([seq + 1]);
  }, 60_000);
});

/** A pair caught up after three deliveries (at `seq`), closed, and a copy of its primary's directory: the older image it is put back to. */
async function pairAndOlderImage(): Promise<{ pair: Pair; seq: number; primaryDir: string; older: string }> {
  const pair = await startPair({ fill: async (store) => { for (let i = 0; i < 3; i++) await store.append('INBOX', msg(i)); } });
  await until(() => pair.replica.store.changes.lastSeq === pair.primaryStore.changes.lastSeq, 15_000, 'the replica');
  const seq = pair.primaryStore.changes.lastSeq;
  await pair.close();
  const older = join(tmpDir('older-image'), 'p');
  cpSync(pair.primaryStore.root, older, { recursive: true });
  return { pair, seq, primaryDir: pair.primaryStore.root, older };
}

/**
 * The older image serves, at epoch 0 as before, after a delivery of its own under seq + 1, and the
 * replica (closed, holding rounds past `seq`) is started against it: it must refuse, taking
 * nothing and keeping REPLICATION-PENDING byte for byte (before: the older image's record for
 * seq + 1 taken, the file emptied). The refusal, the primary's log and the seqs still held.
 */
async function refusedByOlderImage(pair: Pair, older: string, seq: number): Promise<{ refusal: string; primaryLines: string[]; held: number[] }> {
  const file = readFileSync(join(pair.replicaDir, PENDING_FILE));
  const store = await Store.open(older);
  const primaryLines: string[] = [];
  const primary = await startPrimary(store, { listen: '127.0.0.1:0', keyFile: pair.key, log: (l) => primaryLines.push(l) });
  const lines: string[] = [];
  let replica: ReplicaHandle | undefined;
  try {
    await store.append('INBOX', msg(100));
    replica = await startReplica(pair.replicaDir, { primary: `127.0.0.1:${(await primary.status()).port}`, keyFile: pair.key, log: (l) => lines.push(l) });
    await until(() => lines.some((l) => /REFUSED/.test(l)) || replica!.store.changes.lastSeq > seq, 15_000, 'the refusal (or the rounds replaced)');
    expect(replica.store.changes.lastSeq).toBe(seq);
    const refusal = lines.find((l) => /REFUSED/.test(l))!;
    expect(refusal).toMatch(new RegExp(`holds seq ${seq + 1}, which this primary said had committed here`));
    const held = (await readPendingRounds(replica.store)).rounds.map(lastSeqOf);
    await replica.close();
    replica = undefined;
    expect(readFileSync(join(pair.replicaDir, PENDING_FILE)).equals(file)).toBe(true);
    return { refusal, primaryLines, held };
  } finally {
    await replica?.close();
    await primary.close();
    await store.close();
  }
}
