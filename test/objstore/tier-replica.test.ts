// A replica of a store with an object store keeps its own copy of every pack, locally
// (docs/OBJECT-STORAGE.md, "Replicas"), against a real Ceph radosgw: a replica started after the
// primary moved its packs gets them shipped from the bucket, byte for byte, and reads every message
// exact with the bucket out of its path; a replica given an object store is REFUSED on open before
// any local pack is touched. Skipped (with the reason) without Ceph.
import { beforeAll, describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { writeTierSettings } from '../../src/store/tier.js';
import { unopenedRoot } from '../../src/store/unopened-root.js';
import { startPrimary } from '../../src/replication/primary.js';
import { startReplica } from '../../src/replication/replica.js';
import { cephCredentials, cephInstalled, createBucket, sharedCeph, type Ceph } from '../helpers/ceph.js';
import { tmpDir } from '../helpers/tmp.js';
import { codeOf, keyFile, quiet, until } from '../replication/helpers.js';

const message = (i: number) => Buffer.from(`From: a${i}@example.org\r\nSubject: m ${i}\r\nMessage-ID: <${i}@rp>\r\n\r\n${'body line\r\n'.repeat(50 + (i * 37) % 900)}`);
const installed = cephInstalled();
if (!installed) console.log('object-storage replica tests skipped: Ceph is not installed (apt-get install ceph-mon ceph-osd radosgw ceph-common)');
const localPacks = (root: string) => readdirSync(join(root, 'packs')).filter((n) => n.endsWith('.pack')).sort();

describe.skipIf(!installed)('a replica of a store with an object store, on Ceph', () => {
  let ceph: Ceph;
  beforeAll(async () => { ceph = (await sharedCeph())!; }, 180_000);

  it('keeps its own local copy of every pack, shipped from the bucket for packs that moved; with an object store it is refused', async () => {
    createBucket(ceph, 'mailstore-replica');
    const root = tmpDir('primary');
    const credentials = cephCredentials(ceph, tmpDir());
    await (await Store.open(root, { create: true })).close();
    const settings = { url: `${ceph.endpoint}/mailstore-replica`, credentials };
    await writeTierSettings(unopenedRoot(nodeFileSystem, root), settings);
    const primaryStore = await Store.open(root, { packBytesMax: 64 * 1024 });
    await primaryStore.createMailbox('INBOX');
    const bodies = Array.from({ length: 120 }, (_, i) => message(i + 1));
    for (let i = 0; i < bodies.length; i += 20) await primaryStore.appendBatch('INBOX', bodies.slice(i, i + 20).map((bytes) => ({ bytes })));
    const moved = await primaryStore.tierFlush();
    expect(moved.packsMoved).toBeGreaterThan(3);
    expect(localPacks(root)).toEqual([]);
    const key = keyFile();
    const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    const replicaRoot = join(tmpDir('replica'), 'r');
    let replica = await startReplica(replicaRoot, { primary: `127.0.0.1:${(await primary.status()).port}`, keyFile: key, log: quiet });
    try {
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 30_000, 'the replica caught up');
      // every pack the primary moved is a local file on the replica
      expect(localPacks(replicaRoot).length).toBe(moved.packsMoved);
      await replica.close();
      await ceph.stopGateway('SIGTERM'); // the replica reads nothing from the bucket
      const reader = await Store.open(replicaRoot, { readOnly: true });
      for (let uid = 1; uid <= bodies.length; uid++) expect((await reader.fetch('INBOX', uid)).equals(bodies[uid - 1])).toBe(true);
      await reader.close();
      await ceph.startGateway();
      // an object store on a replica: refused before a local pack is touched
      await writeTierSettings(unopenedRoot(nodeFileSystem, replicaRoot), settings);
      const before = localPacks(replicaRoot);
      expect(await codeOf(Store.open(replicaRoot))).toBe('REFUSED');
      expect(localPacks(replicaRoot)).toEqual(before);
      replica = undefined as never;
    } finally {
      await replica?.close();
      await primary.close();
      await primaryStore.close();
    }
  }, 180_000);
});
