// A replica of an older mailstore following a primary of this one (the primary upgraded first,
// against docs/FORMAT.md "Compatibility"): one before session 32 drops what later records carry (an
// undumped mailbox's uidNext), and nothing refused it. A replica's hello now names its replication
// version; the primary logs a warning for one that names none, and a replica of this code is quiet.
import { describe, expect, it } from 'vitest';
import { readKeyFile } from '../../src/replication/key.js';
import { connect } from '../../src/replication/transport.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { startPair, until } from './helpers.js';

const warning = /WARNING: replica 0123456789abcdef runs a mailstore older than this primary's \(its hello names no replication version\): upgrade replicas before their primary/;

describe('a replica whose hello names no version (an older mailstore)', () => {
  it('is served, and the primary logs a warning naming it; a replica of this code gets none', async () => {
    const lines: string[] = [];
    const pair = await startPair({ primary: { log: (line) => lines.push(line) } });
    try {
      await until(() => pair.replica.store.changes.lastSeq === pair.primaryStore.changes.lastSeq);
      expect(lines.filter((line) => line.includes('WARNING'))).toEqual([]);
      // the hello a replica of session 30 or 33 sends (src/replication/replica.ts there), for this primary's store
      const connection = await connect(pair.address, await readKeyFile(nodeFileSystem, pair.key));
      try {
        await connection.send({ t: 'hello', kind: 'replica', storeId: pair.primaryStore.identity.storeId, nodeId: '0123456789abcdef', lastSeq: pair.primaryStore.changes.lastSeq, tails: [], epoch: 0 });
        expect((await connection.expect('welcome', 5000)).storeId).toBe(pair.primaryStore.identity.storeId);
        await until(() => lines.some((line) => warning.test(line)));
      } finally {
        connection.close();
      }
    } finally {
      await pair.close();
    }
  }, 30_000);
});
