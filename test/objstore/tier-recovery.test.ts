// The RECOVERY.md rows of the object-storage tier, against a real Ceph radosgw: a damaged object is
// repaired from another copy of the store (scrub --repair --source), the good bytes written into a
// new local pack; every message then reads back exact and scrub is clean. A lost bucket: reads,
// scrub and scrub --repair are UNMOUNTED (nothing quarantined), and packs put back serve. Skipped without Ceph.
import { beforeAll, describe, expect, it } from 'vitest';
import { cpSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as Minio from 'minio';
import { Store } from '../../src/store/store.js';
import { scrub } from '../../src/scrub/scrub.js';
import { repair } from '../../src/scrub/repair.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { writeTierSettings } from '../../src/store/tier.js';
import { unopenedRoot } from '../../src/store/unopened-root.js';
import { cephCredentials, cephInstalled, createBucket, sharedCeph, type Ceph, cephClient, listKeys } from '../helpers/ceph.js';
import { tmpDir } from '../helpers/tmp.js';
import { codeOf } from '../helpers/errors.js';
import { requireBuilt, run } from '../cli/helpers.js';

const message = (i: number) => Buffer.from(`From: a${i}@example.org\r\nSubject: m ${i}\r\nMessage-ID: <${i}@rc>\r\n\r\n${'body line\r\n'.repeat(50 + (i * 37) % 900)}`);
const installed = cephInstalled();
if (!installed) console.log('object-storage recovery tests skipped: Ceph is not installed (apt-get install ceph-mon ceph-osd radosgw ceph-common)');

describe.skipIf(!installed)('object-storage tier recovery, on Ceph', () => {
  let ceph: Ceph;
  let client: Minio.Client;
  beforeAll(async () => {
    ceph = (await sharedCeph())!;
    client = cephClient(ceph);
  }, 180_000);

  it('a damaged object: scrub finds it, --repair --source COPY writes the good bytes into a new local pack; exact and clean after', async () => {
    createBucket(ceph, 'mailstore-rc1');
    const root = tmpDir();
    const credentials = cephCredentials(ceph, tmpDir());
    await (await Store.open(root, { create: true })).close();
    await writeTierSettings(unopenedRoot(nodeFileSystem, root), { url: `${ceph.endpoint}/mailstore-rc1`, credentials });
    let store = await Store.open(root, { packBytesMax: 64 * 1024 });
    await store.createMailbox('INBOX');
    const bodies = Array.from({ length: 60 }, (_, i) => message(i + 1));
    for (let i = 0; i < bodies.length; i += 20) await store.appendBatch('INBOX', bodies.slice(i, i + 20).map((bytes) => ({ bytes })));
    await store.close();
    const copy = join(tmpDir(), 'copy'); // e.g. a replica or a restored backup: its packs are local
    cpSync(root, copy, { recursive: true });
    store = await Store.open(root);
    await store.tierFlush();
    await store.close();
    const keys = await listKeys(client, 'mailstore-rc1');
    const bytes = await getAll(client, 'mailstore-rc1', keys[1]);
    bytes[bytes.length - 50] ^= 0x77;
    await client.putObject('mailstore-rc1', keys[1], bytes);
    store = await Store.open(root);
    const before = await scrub(store);
    expect(before.findings.filter((f) => f.kind === 'blob-corrupt')).toHaveLength(1);
    const result = await repair(store, before, { sources: [copy] });
    expect(result.unrepaired).toEqual([]);
    expect(result.blobsRestored).toBe(1);
    for (let uid = 1; uid <= bodies.length; uid++) expect((await store.fetch('INBOX', uid)).equals(bodies[uid - 1])).toBe(true);
    const after = await scrub(store);
    expect(after.findings.filter((f) => f.kind === 'blob-corrupt' || f.kind === 'blob-missing')).toEqual([]);
    await store.close();
  }, 180_000);

  it('a lost bucket: reads are UNMOUNTED, nothing local is removed; the packs put back from a replica or copy serve every message, scrub clean', async () => {
    requireBuilt();
    createBucket(ceph, 'mailstore-rc2');
    const root = tmpDir();
    const credentials = cephCredentials(ceph, tmpDir());
    await (await Store.open(root, { create: true })).close();
    await writeTierSettings(unopenedRoot(nodeFileSystem, root), { url: `${ceph.endpoint}/mailstore-rc2`, credentials });
    let store = await Store.open(root, { packBytesMax: 64 * 1024 });
    await store.createMailbox('INBOX');
    const bodies = Array.from({ length: 60 }, (_, i) => message(i + 1));
    for (let i = 0; i < bodies.length; i += 20) await store.appendBatch('INBOX', bodies.slice(i, i + 20).map((bytes) => ({ bytes })));
    await store.close();
    const copy = join(tmpDir(), 'copy'); // a replica's packs/ holds every pack (docs/OBJECT-STORAGE.md, "Replicas")
    cpSync(join(root, 'packs'), copy, { recursive: true });
    store = await Store.open(root);
    const moved = await store.tierFlush();
    await store.close();
    for (const key of await listKeys(client, 'mailstore-rc2')) await client.removeObject('mailstore-rc2', key);
    await client.removeBucket('mailstore-rc2');
    store = await Store.open(root);
    expect(await codeOf(store.fetch('INBOX', 1))).toBe('UNMOUNTED');
    // the sanity gates: a vanished bucket is a vanished partition, not damage to report or repair
    expect(await codeOf(scrub(store))).toBe('UNMOUNTED');
    await store.close();
    const repairRun = await run(['scrub', '--repair', '--json'], { store: root });
    expect(repairRun.code).toBe(3); // UNMOUNTED: nothing quarantined or dropped
    expect(repairRun.stderr.toString()).toContain(`${ceph.endpoint}/mailstore-rc2`);
    store = await Store.open(root);
    expect((await store.status('INBOX')).messages).toBe(bodies.length);
    expect(await store.listMailboxes()).toHaveLength(1); // no lost+found
    await store.close();
    // put the moved packs back (only the ones missing here)
    const local = new Set(readdirSync(join(root, 'packs')));
    let back = 0;
    for (const name of readdirSync(copy)) if (name.endsWith('.pack') && !local.has(name)) { cpSync(join(copy, name), join(root, 'packs', name)); back++; }
    expect(back).toBe(moved.packsMoved);
    store = await Store.open(root); // the bucket is gone: the journal's word alone removes no local copy
    expect(readdirSync(join(root, 'packs')).filter((n) => n.endsWith('.pack')).length).toBeGreaterThanOrEqual(back);
    for (let uid = 1; uid <= bodies.length; uid++) expect((await store.fetch('INBOX', uid)).equals(bodies[uid - 1])).toBe(true);
    expect((await scrub(store)).findings.filter((f) => f.kind !== 'unreferenced-pack-record')).toEqual([]);
    await store.close();
  }, 180_000);
});

async function getAll(client: Minio.Client, bucket: string, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await client.getObject(bucket, key)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
