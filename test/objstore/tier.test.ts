// The object-storage tier against a real Ceph radosgw on loopback (test/helpers/ceph.ts): sealed
// packs move to the bucket and every message reads back exact from it; an outage is a clear error,
// never wrong bytes; damage and loss behind the store's back are found; a move interrupted at any
// step loses nothing. Skipped (with the reason) where Ceph is not installed; .ci/run installs it.
import { beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as Minio from 'minio';
// every body in a pack: these tests move, lose or repair pack records (helpers/packed.ts)
import { PackedStore as Store } from '../helpers/packed.js';
import { MailstoreError } from '../../src/errors.js';
import { scrub } from '../../src/scrub/scrub.js';
import { checkTierSettings, writeTierSettings } from '../../src/store/tier.js';
import { unopenedRoot } from '../../src/store/unopened-root.js';
import { cephCredentials, cephInstalled, createBucket, sharedCeph, type Ceph, cephClient, listKeys } from '../helpers/ceph.js';
import { tmpDir } from '../helpers/tmp.js';
import { codeOf } from '../helpers/errors.js';
import { json, ok, requireBuilt } from '../cli/helpers.js';

const message = (i: number) => Buffer.from(`From: a${i}@example.org\r\nSubject: m ${i}\r\nMessage-ID: <${i}@t>\r\n\r\n${'body line\r\n'.repeat(50 + (i * 37) % 900)}`);


const installed = cephInstalled();
if (!installed) console.log('object-storage tests skipped: Ceph is not installed (apt-get install ceph-mon ceph-osd radosgw ceph-common)');

describe.skipIf(!installed)('object-storage tier on Ceph', () => {
  let ceph: Ceph;
  let client: Minio.Client;
  let bucketCount = 0;
  beforeAll(async () => {
    ceph = (await sharedCeph())!;
    client = cephClient(ceph);
  }, 180_000);

  /** A store with its own bucket and `n` messages in INBOX, packs not yet moved. */
  async function tieredStore(n: number): Promise<{ root: string; store: Store; bucket: string; bodies: Buffer[] }> {
    const bucket = `mailstore-t${++bucketCount}`;
    createBucket(ceph, bucket);
    const root = tmpDir();
    const credentials = cephCredentials(ceph, tmpDir());
    const settings = { url: `${ceph.endpoint}/${bucket}`, credentials };
    await checkTierSettings((await import('../../src/fs/node-fs.js')).nodeFileSystem, settings);
    let store = await Store.open(root, { create: true });
    await store.close();
    await writeTierSettings(unopenedRoot((await import('../../src/fs/node-fs.js')).nodeFileSystem, root), settings);
    store = await Store.open(root);
    await store.createMailbox('INBOX');
    const bodies = Array.from({ length: n }, (_, i) => message(i + 1));
    await store.appendBatch('INBOX', bodies.map((bytes) => ({ bytes })));
    return { root, store, bucket, bodies };
  }

  const localPackBytes = (root: string) => readdirSync(join(root, 'packs')).filter((n) => n.endsWith('.pack')).reduce((s, n) => s + statSync(join(root, 'packs', n)).size, 0);

  it('mailstore tier flush --json and tier status --json, as a script sees them', async () => {
    requireBuilt();
    const { root, store, bodies } = await tieredStore(300);
    await store.close();
    const before = await json(['tier', 'status'], { store: root });
    expect(before).toMatchObject({ url: expect.stringContaining(ceph.endpoint), remotePacks: 0, remoteBytes: 0, localShare: 1 });
    expect(before.localPacks).toBeGreaterThan(0);
    const flushed = await json(['tier', 'flush'], { store: root });
    expect(Object.keys(flushed).sort()).toEqual(['bytesMoved', 'localBytesAfter', 'packsMoved', 'remoteBytes', 'seconds']);
    expect(flushed.packsMoved).toBeGreaterThan(0);
    expect(flushed.bytesMoved).toBe(flushed.remoteBytes);
    expect(flushed.localBytesAfter).toBe(localPackBytes(root));
    const after = await json(['tier', 'status'], { store: root });
    expect(after).toMatchObject({ remotePacks: flushed.packsMoved, remoteBytes: flushed.remoteBytes, localBytes: flushed.localBytesAfter });
    expect(after.localShare).toBeLessThan(0.15);
    expect(after.policy).toEqual({ localBytesMax: null, localShareDefault: 0.1, moveAfterMs: 7 * 86_400_000 });
    expect(await ok(['tier', 'status'], { store: root })).toContain(`remote  ${flushed.packsMoved} packs`);
    // nothing left to move: a second flush moves nothing and says so
    expect((await json(['tier', 'flush'], { store: root })).packsMoved).toBe(0);
    const again = await Store.open(root);
    for (let uid = 1; uid <= bodies.length; uid++) expect((await again.fetch('INBOX', uid)).equals(bodies[uid - 1]!)).toBe(true);
    await again.close();
  }, 120_000);

  it('moves sealed packs to the bucket; every message reads back exact, after a reopen too; scrub is clean', async () => {
    const { root, store, bodies } = await tieredStore(120);
    const total = localPackBytes(root);
    const result = await store.tierFlush();
    expect(result.packsMoved).toBe(1);
    expect(localPackBytes(root)).toBe(0);
    for (let uid = 1; uid <= bodies.length; uid++) expect((await store.fetch('INBOX', uid)).equals(bodies[uid - 1])).toBe(true);
    // new mail goes to a new local pack, never under a moved pack's number
    const { uid } = await store.append('INBOX', message(1000));
    expect(localPackBytes(root)).toBeGreaterThan(0);
    expect(localPackBytes(root)).toBeLessThan(total * 0.15);
    const report = await scrub(store);
    expect(report.findings).toEqual([]);
    await store.close();
    const again = await Store.open(root);
    expect((await again.fetch('INBOX', 7)).equals(bodies[6])).toBe(true);
    expect((await again.fetch('INBOX', uid)).equals(message(1000))).toBe(true);
    const status = await again.tierStatus();
    expect(status.remotePacks).toBe(1);
    expect(status.localShare).toBeLessThan(0.15);
    let n = 0;
    for await (const m of again.readMessages('INBOX')) { if (m.info.uid <= bodies.length) expect(m.body.equals(bodies[m.info.uid - 1])).toBe(true); n++; }
    expect(n).toBe(bodies.length + 1);
    await again.close();
  }, 120_000);

  it('compaction rewrites a moved pack: live messages exact in a new local pack, the old object deleted after the journal dropped it', async () => {
    const { root, store, bucket, bodies } = await tieredStore(60);
    await store.tierFlush();
    const [oldObject] = await listKeys(client, bucket);
    const keep = new Set(Array.from({ length: 12 }, (_, i) => i * 5 + 1));
    await store.expunge('INBOX', bodies.map((_, i) => i + 1).filter((uid) => !keep.has(uid)));
    const result = await store.compact();
    expect(result.packsRewritten.length).toBe(1);
    expect(await listKeys(client, bucket)).not.toContain(oldObject);
    for (const uid of keep) expect((await store.fetch('INBOX', uid)).equals(bodies[uid - 1])).toBe(true);
    expect((await store.tierStatus()).remotePacks).toBe(0);
    await store.close();
    const again = await Store.open(root);
    expect((await scrub(again)).findings.filter((f) => f.kind !== 'unreferenced-blob')).toEqual([]);
    for (const uid of keep) expect((await again.fetch('INBOX', uid)).equals(bodies[uid - 1])).toBe(true);
    await again.close();
  }, 120_000);

  it('radosgw down: a fetch is IO naming the URL, never bytes; back up: exact again', async () => {
    const { root, store, bodies } = await tieredStore(30);
    await store.tierFlush();
    await store.close();
    const reader = await Store.open(root); // a fresh cache: the read must go to the bucket
    await ceph.stopGateway('SIGTERM');
    try {
      const error = await reader.fetch('INBOX', 3).then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(MailstoreError);
      expect((error as MailstoreError).code).toBe('IO');
      expect((error as MailstoreError).message).toContain(ceph.endpoint);
    } finally {
      await ceph.startGateway();
    }
    expect((await reader.fetch('INBOX', 3)).equals(bodies[2])).toBe(true);
    await reader.close();
  }, 180_000);

  it('an object damaged behind the store is found by scrub and never served as wrong bytes', async () => {
    const { root, store, bucket, bodies } = await tieredStore(40);
    await store.tierFlush();
    await store.close();
    const [object] = await listKeys(client, bucket);
    const bytes = await getAll(client, bucket, object);
    bytes[Math.floor(bytes.length / 2)] ^= 0x5a;
    await client.putObject(bucket, object, bytes);
    const again = await Store.open(root);
    const report = await scrub(again);
    expect(report.findings.length).toBeGreaterThan(0);
    let corrupt = 0;
    for (let uid = 1; uid <= bodies.length; uid++) {
      try {
        expect((await again.fetch('INBOX', uid)).equals(bodies[uid - 1])).toBe(true);
      } catch (error) {
        expect((error as MailstoreError).code).toBe('CORRUPT');
        corrupt++;
      }
    }
    expect(corrupt).toBe(1);
    await again.close();
  }, 120_000);

  it('a deleted object is CORRUPT, a deleted bucket UNMOUNTED; revoked credentials are ACCESS', async () => {
    const { root, store, bucket } = await tieredStore(10);
    await store.tierFlush();
    await store.close();
    const [object] = await listKeys(client, bucket);
    await client.removeObject(bucket, object);
    let again = await Store.open(root);
    expect(await codeOf(again.fetch('INBOX', 1))).toBe('CORRUPT');
    await again.close();
    await client.removeBucket(bucket);
    again = await Store.open(root);
    expect(await codeOf(again.fetch('INBOX', 1))).toBe('UNMOUNTED');
    await again.close();
    const cred = join(root, '..', 'bad-cred');
    writeFileSync(cred, `${ceph.accessKey}:wrong-secret\n`);
    expect(await codeOf(checkTierSettings((await import('../../src/fs/node-fs.js')).nodeFileSystem, { url: `${ceph.endpoint}/${bucket}`, credentials: cred }))).toBe('ACCESS');
  }, 120_000);

  it('a move interrupted after the journal recorded it: the next open removes the local copy, and reads come from the bucket', async () => {
    const { root, store, bodies } = await tieredStore(20);
    const pack = readdirSync(join(root, 'packs')).find((n) => n.endsWith('.pack'))!;
    copyFileSync(join(root, 'packs', pack), join(root, 'saved.pack'));
    await store.tierFlush();
    await store.close();
    copyFileSync(join(root, 'saved.pack'), join(root, 'packs', pack)); // as if the crash came before step 5
    const again = await Store.open(root);
    expect(existsSync(join(root, 'packs', pack))).toBe(false);
    expect((await again.fetch('INBOX', 5)).equals(bodies[4])).toBe(true);
    await again.close();
  }, 120_000);

  it('an upload not yet recorded (a crash before step 4) leaves the pack local and serving; flush then completes it', async () => {
    const { root, store, bucket, bodies } = await tieredStore(20);
    const pack = readdirSync(join(root, 'packs')).find((n) => n.endsWith('.pack'))!;
    const before = readdirSync(join(root, 'packs')).length;
    // the object exists (uploaded), the journal knows nothing of it
    const { identity } = store;
    await client.putObject(bucket, `${identity.storeId}/packs/${pack}`, Buffer.from('partial upload'));
    await store.close();
    const again = await Store.open(root);
    expect(readdirSync(join(root, 'packs')).length).toBe(before);
    expect((await again.fetch('INBOX', 2)).equals(bodies[1])).toBe(true);
    const result = await again.tierFlush();
    expect(result.packsMoved).toBe(1);
    expect((await again.fetch('INBOX', 2)).equals(bodies[1])).toBe(true);
    await again.close();
  }, 120_000);
});

async function getAll(client: Minio.Client, bucket: string, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await client.getObject(bucket, key)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
