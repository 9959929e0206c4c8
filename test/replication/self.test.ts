// A replica given its own --replication-listen address as --replica-of (a copy-paste slip in a
// unit file): its own listener answered that it is a replica and answers repair and check only,
// which reads as if the address were some other replica.
import { describe, expect, it } from 'vitest';
import { checkReplica } from '../../src/replication/check.js';
import { startReplica } from '../../src/replication/replica.js';
import { freePort } from '../daemon/processes.js';
import { codeOf, msg, startPair, until } from './helpers.js';

describe('a replica pointed at itself', () => {
  it('is refused (REFUSED) saying the address is this replica\'s own listener; it keeps what it has', async () => {
    const pair = await startPair();
    try {
      await pair.primaryStore.append('INBOX', msg(1));
      await until(() => pair.replica.store.changes.lastSeq === pair.primaryStore.changes.lastSeq);
      await pair.replica.close();
      const own = `127.0.0.1:${await freePort()}`;
      pair.replica = await startReplica(pair.replicaDir, { ...pair.replicaOptions, primary: own, listen: own });
      await until(() => pair.replica.status().lastError !== undefined, 15_000, 'the refusal');
      expect(pair.replica.status().lastError).toMatch(new RegExp(`REFUSED: ${own}: this is the listener of the replica itself \\(node id [0-9a-f]{16}\\): its --replica-of names its own --replication-listen`));
      expect(await pair.replica.store.fetch('INBOX', 1)).toEqual(msg(1));
    } finally {
      await pair.close();
    }
  }, 30_000);

  // replica check --primary given the replica's own listener compared the replica with itself:
  // "identical", exit 0, whatever its primary holds
  it('replica check against its own listener is refused (REFUSED), never "identical"', async () => {
    const own = `127.0.0.1:${await freePort()}`;
    const pair = await startPair({ replica: { listen: own } });
    try {
      await pair.primaryStore.append('INBOX', msg(1));
      await until(() => pair.replica.store.changes.lastSeq === pair.primaryStore.changes.lastSeq);
      const self = checkReplica(pair.replica.store, { primary: own, keyFile: pair.key, catchUpMs: 0 });
      expect(await codeOf(self)).toBe('REFUSED');
      await expect(checkReplica(pair.replica.store, { primary: own, keyFile: pair.key, catchUpMs: 0 })).rejects.toThrow(/the replica itself/);
      await pair.expectIdentical(); // against its primary, as before
    } finally {
      await pair.close();
    }
  }, 30_000);
});
