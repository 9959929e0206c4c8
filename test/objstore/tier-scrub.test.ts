// Scrub over the object-storage tier against a real Ceph radosgw (test/helpers/ceph.ts): a full
// pass reads every object (bounded by --max-object-rate, which leaves local packs alone); a pass
// with objects: 'checksum' reads none of a clean bucket, and still finds an object changed behind
// the store's back (its ETag no longer matches, so it is read in full). Skipped without Ceph.
import { beforeAll, describe, expect, it } from 'vitest';
import * as Minio from 'minio';
import { Store } from '../../src/store/store.js';
import { scrub } from '../../src/scrub/scrub.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { writeTierSettings } from '../../src/store/tier.js';
import { unopenedRoot } from '../../src/store/unopened-root.js';
import { cephCredentials, cephInstalled, createBucket, sharedCeph, type Ceph, cephClient, listKeys } from '../helpers/ceph.js';
import { tmpDir } from '../helpers/tmp.js';

const message = (i: number) => Buffer.from(`From: a${i}@example.org\r\nSubject: m ${i}\r\nMessage-ID: <${i}@sc>\r\n\r\n${'body line\r\n'.repeat(50 + (i * 37) % 900)}`);
const installed = cephInstalled();
if (!installed) console.log('object-storage scrub tests skipped: Ceph is not installed (apt-get install ceph-mon ceph-osd radosgw ceph-common)');

describe.skipIf(!installed)('scrub over the object-storage tier, on Ceph', () => {
  let ceph: Ceph;
  let client: Minio.Client;
  let buckets = 0;
  beforeAll(async () => {
    ceph = (await sharedCeph())!;
    client = cephClient(ceph);
  }, 180_000);

  /** 200 messages in packs of 64 KiB, every sealed pack moved; returns the open store and its bucket. */
  async function moved(tier = true): Promise<{ root: string; store: Store; bucket: string; bodies: Buffer[] }> {
    const bucket = `mailstore-sc${++buckets}`;
    const root = tmpDir();
    await (await Store.open(root, { create: true })).close();
    if (tier) {
      createBucket(ceph, bucket);
      const credentials = cephCredentials(ceph, tmpDir());
      await writeTierSettings(unopenedRoot(nodeFileSystem, root), { url: `${ceph.endpoint}/${bucket}`, credentials });
    }
    const store = await Store.open(root, { packBytesMax: 64 * 1024 });
    await store.createMailbox('INBOX');
    const bodies = Array.from({ length: 200 }, (_, i) => message(i + 1));
    for (let i = 0; i < bodies.length; i += 20) await store.appendBatch('INBOX', bodies.slice(i, i + 20).map((bytes) => ({ bytes })));
    if (tier) await store.tierFlush();
    return { root, store, bucket, bodies };
  }

  it('a full pass reads every object; objects: checksum reads none of a clean bucket and finds nothing', async () => {
    const { store } = await moved();
    const status = await store.tierStatus();
    expect(status.remotePacks).toBeGreaterThan(5);
    const full = await scrub(store);
    expect(full.findings).toEqual([]);
    // the scan counts record bytes, not pack headers
    expect(full.summary.objectBytesRead).toBeGreaterThan(status.remoteBytes * 0.95);
    expect(full.summary.objectBytesRead).toBeLessThanOrEqual(status.remoteBytes);
    const light = await scrub(store, { objects: 'checksum' });
    expect(light.findings).toEqual([]);
    expect(light.summary.objectsByChecksum).toBe(status.remotePacks);
    expect(light.summary.objectBytesRead).toBe(0);
    expect(light.summary.cycleComplete).toBe(true);
    await store.close();
  }, 120_000);

  it('objects: checksum still finds an object changed behind the store (its ETag changed, so it is read)', async () => {
    const { root, store, bucket, bodies } = await moved();
    await store.close();
    const keys = await listKeys(client, bucket);
    const victim = keys[2];
    const bytes = await getAll(client, bucket, victim);
    bytes[bytes.length - 100] ^= 0x5a; // inside the last record's body: same size, other bytes
    await client.putObject(bucket, victim, bytes);
    const again = await Store.open(root);
    const light = await scrub(again, { objects: 'checksum' });
    expect(light.summary.objectsByChecksum).toBe(keys.length - 1);
    expect(light.summary.objectBytesRead).toBeGreaterThan(bytes.length * 0.95);
    expect(light.summary.objectBytesRead).toBeLessThanOrEqual(bytes.length);
    const corrupt = light.findings.filter((f) => f.kind === 'blob-corrupt');
    expect(corrupt).toHaveLength(1);
    // nothing else was lost: every other message reads back exact
    let exact = 0;
    for (let uid = 1; uid <= bodies.length; uid++) {
      try {
        if ((await again.fetch('INBOX', uid)).equals(bodies[uid - 1])) exact++;
      } catch (error) {
        expect((error as { code?: string }).code).toBe('CORRUPT');
      }
    }
    expect(exact).toBe(bodies.length - 1);
    await again.close();
  }, 120_000);

  it('--max-object-rate bounds the bytes read from the bucket and leaves local packs alone', async () => {
    const { store } = await moved();
    const remoteBytes = (await store.tierStatus()).remoteBytes;
    const rate = remoteBytes / 1.5; // bytes per second: the objects take >= 1.5 s
    const slow = await scrub(store, { maxObjectRateBytesPerSecond: rate });
    expect(slow.findings).toEqual([]);
    expect(slow.summary.seconds).toBeGreaterThanOrEqual(1.3);
    await store.close();
    const local = await moved(false);
    const fast = await scrub(local.store, { maxObjectRateBytesPerSecond: 1000 }); // 1 kB/s: only objects would wait
    expect(fast.summary.bytesVerified).toBeGreaterThan(remoteBytes / 2);
    expect(fast.summary.objectBytesRead).toBe(0);
    expect(fast.summary.seconds).toBeLessThan(1.3);
    await local.store.close();
  }, 120_000);
});

async function getAll(client: Minio.Client, bucket: string, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await client.getObject(bucket, key)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
