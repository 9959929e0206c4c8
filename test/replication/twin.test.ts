// Two replicas with one node id: a replica's directory copied (cp -a, a VM cloned) and both
// started. Each connection took the other's session away: the primary dropped one replica for the
// other about ten times a second for as long as both ran, each logged only "closed the
// connection", and a synchronous change could meet the moment with no replica connected.
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startReplica } from '../../src/replication/replica.js';
import { tmpDir } from '../helpers/tmp.js';
import { msg, startPair, until } from './helpers.js';

describe('two replicas started from copies of one replica directory', () => {
  it('the second is refused (REFUSED, naming the node id and the copy) while the first is connected; the first is never dropped; the copy gets in once the first is gone', async () => {
    const lines: string[] = [];
    const pair = await startPair({ primary: { log: (line) => lines.push(line) } });
    const twinDir = join(tmpDir('twin'), 'r');
    try {
      await pair.primaryStore.append('INBOX', msg(1));
      await until(() => pair.replica.store.changes.lastSeq === pair.primaryStore.changes.lastSeq);
      await pair.replica.close();
      cpSync(pair.replicaDir, twinDir, { recursive: true });
      pair.replica = await startReplica(pair.replicaDir, pair.replicaOptions);
      await until(() => pair.replica.status().connected, 15_000, 'the first to connect');
      const twin = await startReplica(twinDir, pair.replicaOptions);
      try {
        await until(() => /REFUSED: /.test(twin.status().lastError ?? ''), 15_000, 'the copy to be refused');
        expect(twin.status().lastError).toMatch(/node id [0-9a-f]{16} is already connected from 127\.0\.0\.1:\d+: two replicas share it \(a copy of a replica's directory\?\)/);
        const connects = () => lines.filter((line) => / connected from /.test(line)).length;
        const before = connects();
        for (let i = 2; i <= 12; i++) {
          await pair.primaryStore.append('INBOX', msg(i));
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        await until(() => pair.replica.store.changes.lastSeq === pair.primaryStore.changes.lastSeq);
        expect(connects()).toBe(before); // nobody was let in again meanwhile
        expect(lines.filter((line) => / disconnected at /.test(line))).toEqual([expect.stringMatching(/at seq/)]); // the first one's close() above
        await pair.replica.close();
        await until(() => twin.store.changes.lastSeq === pair.primaryStore.changes.lastSeq, 20_000, 'the copy to catch up');
        for (let uid = 1; uid <= 12; uid++) expect(await twin.store.fetch('INBOX', uid)).toEqual(msg(uid));
      } finally {
        await twin.close();
      }
    } finally {
      await pair.close();
    }
  }, 60_000);
});
