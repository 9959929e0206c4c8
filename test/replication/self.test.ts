// A replica given its own --replication-listen address as --replica-of (a copy-paste slip in a
// unit file): its own listener answered that it is a replica and answers repair and check only,
// which reads as if the address were some other replica.
import { describe, expect, it } from 'vitest';
import { startReplica } from '../../src/replication/replica.js';
import { freePort } from '../daemon/processes.js';
import { msg, startPair, until } from './helpers.js';

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
});
