// Failure paths of the object-storage tier against a real Ceph radosgw (test/helpers/ceph.ts): the
// local side failing while a pack moves (EIO reading the pack, ENOSPC on the journal commit, EIO
// removing the local copy after the commit), `tier flush` SIGKILLed mid-upload in another process,
// radosgw SIGKILLed in the middle of a flush's uploads, and radosgw SIGKILLed in the middle of a
// mailbox read. Each asserts the error code and that
// every acknowledged message still reads back exact. Skipped (with the reason) without Ceph.
import { beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as Minio from 'minio';
import { Store } from '../../src/store/store.js';
import { MailstoreError } from '../../src/errors.js';
import { scrub } from '../../src/scrub/scrub.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { cephInstalled, sharedCeph, type Ceph, cephClient, tieredStoreRoot, listKeys } from '../helpers/ceph.js';
import { codeOf } from '../helpers/errors.js';
import { bin, requireBuilt } from '../cli/helpers.js';

const message = (i: number) => Buffer.from(`From: a${i}@example.org\r\nSubject: m ${i}\r\nMessage-ID: <${i}@ft>\r\n\r\n${'body line\r\n'.repeat(50 + (i * 37) % 900)}`);
const installed = cephInstalled();
if (!installed) console.log('object-storage fault tests skipped: Ceph is not installed (apt-get install ceph-mon ceph-osd radosgw ceph-common)');
// libfaketime (apt-get install faketime): this machine's clock far from radosgw's, for real
const faketime = spawnSync('faketime', ['-f', '+0', 'true']).status === 0;
if (installed && !faketime) console.log('the clock-skew test is skipped: faketime is not installed (apt-get install faketime)');
const localPacks = (root: string) => readdirSync(join(root, 'packs')).filter((n) => n.endsWith('.pack'));

describe.skipIf(!installed)('object-storage tier failures, on Ceph', () => {
  let ceph: Ceph;
  let client: Minio.Client;
  let buckets = 0;
  beforeAll(async () => {
    ceph = (await sharedCeph())!;
    client = cephClient(ceph);
  }, 180_000);

  /** A store with a bucket of its own (settings written), not open. */
  async function tieredRoot(): Promise<{ root: string; bucket: string; credentials: string }> {
    const bucket = `mailstore-ft${++buckets}`;
    return { ...(await tieredStoreRoot(ceph, bucket)), bucket };
  }

  async function fill(store: Store, n: number): Promise<Buffer[]> {
    await store.createMailbox('INBOX');
    const bodies = Array.from({ length: n }, (_, i) => message(i + 1));
    for (let i = 0; i < n; i += 20) await store.appendBatch('INBOX', bodies.slice(i, i + 20).map((bytes) => ({ bytes })));
    return bodies;
  }

  async function allExact(store: Store, bodies: Buffer[]): Promise<void> {
    for (let uid = 1; uid <= bodies.length; uid++) expect((await store.fetch('INBOX', uid)).equals(bodies[uid - 1])).toBe(true);
  }

  it('EIO reading the pack to move: IO, nothing moved or removed; the next flush moves it', async () => {
    const { root } = await tieredRoot();
    const fs = new FaultFileSystem();
    const store = await Store.open(root, { fs, packBytesMax: 64 * 1024 });
    const bodies = await fill(store, 60);
    const before = localPacks(root);
    fs.injectAt((op) => op.kind === 'read' && op.path.endsWith('.pack'), 'EIO');
    expect(await codeOf(store.tierFlush())).toBe('IO');
    expect((await store.tierStatus()).remotePacks).toBe(0);
    expect(localPacks(root)).toEqual(before);
    await allExact(store, bodies);
    fs.clear();
    expect((await store.tierFlush()).packsMoved).toBe(before.length);
    await allExact(store, bodies);
    await store.close();
  }, 120_000);

  it('ENOSPC on the journal when the move commits: NO_SPACE, the pack stays local and serving; after space is freed the flush completes', async () => {
    const { root } = await tieredRoot();
    const fs = new FaultFileSystem();
    const store = await Store.open(root, { fs, packBytesMax: 64 * 1024 });
    const bodies = await fill(store, 60);
    const before = localPacks(root);
    fs.failAll('ENOSPC', { pathPrefix: join(root, 'journal') });
    expect(await codeOf(store.tierFlush())).toBe('NO_SPACE');
    expect((await store.tierStatus()).remotePacks).toBe(0);
    expect(localPacks(root)).toEqual(before);
    await allExact(store, bodies);
    fs.clear();
    const moved = await store.tierFlush();
    expect(moved.packsMoved).toBe(before.length);
    await allExact(store, bodies);
    await store.close();
    const again = await Store.open(root);
    await allExact(again, bodies);
    expect((await scrub(again)).findings).toEqual([]);
    await again.close();
  }, 120_000);

  it('EIO removing the local copy after the move committed: IO; the pack is in the bucket and the next open removes the copy', async () => {
    const { root } = await tieredRoot();
    const fs = new FaultFileSystem();
    const store = await Store.open(root, { fs, packBytesMax: 64 * 1024 });
    const bodies = await fill(store, 30);
    const [first] = localPacks(root).sort();
    fs.injectAt((op) => op.kind === 'unlink' && op.path.endsWith(first), 'EIO');
    expect(await codeOf(store.tierFlush())).toBe('IO');
    expect(existsSync(join(root, 'packs', first))).toBe(true);
    expect((await store.tierStatus()).remotePacks).toBeGreaterThanOrEqual(1);
    await allExact(store, bodies);
    await store.close();
    const again = await Store.open(root);
    expect(existsSync(join(root, 'packs', first))).toBe(false);
    await allExact(again, bodies);
    await again.close();
  }, 120_000);

  it('tier flush SIGKILLed in another process mid-upload: nothing acknowledged is lost; the next flush completes; scrub is clean', async () => {
    requireBuilt();
    const { root, bucket } = await tieredRoot();
    // ~40 MB of mail in 8 MiB packs: several uploads, so the kill lands between or inside them
    let store = await Store.open(root);
    await store.createMailbox('INBOX');
    const bodies = Array.from({ length: 200 }, (_, i) => Buffer.from(`From: k${i}@example.org\r\nSubject: ${i}\r\n\r\n${randomBytes(150_000).toString('base64')}\r\n`));
    for (let i = 0; i < bodies.length; i += 25) await store.appendBatch('INBOX', bodies.slice(i, i + 25).map((bytes) => ({ bytes })));
    await store.close();
    const packs = localPacks(root).length;
    expect(packs).toBeGreaterThan(3);
    const child = spawn(process.execPath, [bin, '--store', root, 'tier', 'flush', '--json'], { stdio: 'ignore' });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    // kill once the first object is in the bucket: the next upload is under way
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && (await listKeys(client, bucket)).length === 0) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGKILL');
    await exited;
    expect((await listKeys(client, bucket)).length).toBeGreaterThan(0);
    store = await Store.open(root);
    const status = await store.tierStatus();
    expect(status.localPacks + status.remotePacks).toBe(packs);
    expect(status.localPacks).toBeGreaterThan(0); // killed before the end
    await allExact(store, bodies);
    const result = await store.tierFlush();
    expect(result.packsMoved).toBe(status.localPacks);
    await allExact(store, bodies);
    expect((await scrub(store)).findings).toEqual([]);
    await store.close();
  }, 180_000);

  it('radosgw SIGKILLed in the middle of a flush\'s uploads: IO naming the URL, no local pack removed that the journal does not record as moved; back up, the flush completes, every message exact', async () => {
    const { root, bucket } = await tieredRoot();
    let store = await Store.open(root);
    await store.createMailbox('INBOX');
    // ~60 MB in 8 MiB packs (limits.tierPackBytesMax): seven uploads, so the kill lands inside or between them
    const bodies = Array.from({ length: 300 }, (_, i) => Buffer.from(`From: g${i}@example.org\r\nSubject: ${i}\r\n\r\n${randomBytes(150_000).toString('base64')}\r\n`));
    for (let i = 0; i < bodies.length; i += 25) await store.appendBatch('INBOX', bodies.slice(i, i + 25).map((bytes) => ({ bytes })));
    const packs = localPacks(root).length;
    expect(packs).toBeGreaterThan(3);
    const flushing = store.tierFlush();
    flushing.catch(() => undefined);
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && (await listKeys(client, bucket)).length === 0) await new Promise((r) => setTimeout(r, 10));
    await ceph.stopGateway('SIGKILL');
    let failure: unknown;
    try {
      await flushing;
    } catch (error) {
      failure = error;
    }
    try {
      expect(failure).toBeInstanceOf(MailstoreError);
      expect((failure as MailstoreError).code).toBe('IO');
      expect((failure as MailstoreError).message).toContain(ceph.endpoint);
      // what the journal does not record as moved is still a local file, serving
      const status = await store.tierStatus();
      expect(status.remotePacks).toBeLessThan(packs);
      expect(status.localPacks + status.remotePacks).toBe(packs);
      expect(localPacks(root).length).toBe(status.localPacks);
      // the newest message's pack was never uploaded (packs move oldest first): read from the local disk
      expect((await store.fetch('INBOX', bodies.length)).equals(bodies[bodies.length - 1]!)).toBe(true);
    } finally {
      await ceph.startGateway();
    }
    await allExact(store, bodies);
    const rest = await store.tierFlush();
    expect(rest.packsMoved).toBeGreaterThan(0);
    expect((await store.tierStatus()).localPacks).toBeLessThanOrEqual(1);
    await store.close();
    store = await Store.open(root);
    await allExact(store, bodies);
    expect((await scrub(store)).findings).toEqual([]);
    await store.close();
  }, 240_000);

  it.skipIf(!faketime)('this machine\'s clock two hours ahead of radosgw\'s (faketime under a real tier flush and fetch): IO naming RequestTimeTooSkewed and the clock, nothing moved or removed; with the clock right both work and every message is exact', async () => {
    requireBuilt();
    const { root } = await tieredRoot();
    let store = await Store.open(root, { packBytesMax: 64 * 1024 });
    const bodies = await fill(store, 60);
    await store.close();
    const before = localPacks(root);
    const skewed = (...args: string[]) => spawnSync('faketime', ['-f', '+2h', process.execPath, bin, '--store', root, ...args], { encoding: 'utf8', timeout: 60_000 });
    const flush = skewed('tier', 'flush');
    expect(flush.status, flush.stderr).toBe(2);
    expect(flush.stderr).toMatch(/IO: the object store refused .*\(RequestTimeTooSkewed\): this machine's clock \(\d{4}-.*set the clock right/);
    expect(localPacks(root)).toEqual(before);
    store = await Store.open(root);
    expect((await store.tierStatus()).remotePacks).toBe(0);
    expect((await store.tierFlush()).packsMoved).toBeGreaterThan(0);
    await store.close();
    // a message in the bucket, read with the clock ahead: refused alike, never wrong bytes
    const read = skewed('fetch', 'INBOX', '1');
    expect(read.status, read.stderr).toBe(2);
    expect(read.stderr).toMatch(/RequestTimeTooSkewed/);
    store = await Store.open(root);
    await allExact(store, bodies);
    await store.close();
  }, 120_000);

  it('radosgw SIGKILLed in the middle of a mailbox read: IO naming the URL, never wrong bytes; back up, the read completes exact', async () => {
    const { root } = await tieredRoot();
    let store = await Store.open(root, { packBytesMax: 256 * 1024 });
    const bodies = await fill(store, 1000); // eight read-ahead batches (limits.readBatchMessages): the kill lands before the last
    await store.tierFlush();
    await store.close();
    store = await Store.open(root); // a cold cache: every pack comes from the bucket
    let read = 0;
    let failure: unknown;
    try {
      for await (const m of store.readMessages('INBOX')) {
        expect(m.body.equals(bodies[m.info.uid - 1])).toBe(true);
        if (++read === 10) await ceph.stopGateway('SIGKILL');
      }
    } catch (error) {
      failure = error;
    } finally {
      await ceph.startGateway();
    }
    expect(failure).toBeInstanceOf(MailstoreError);
    expect((failure as MailstoreError).code).toBe('IO');
    expect((failure as MailstoreError).message).toContain(ceph.endpoint);
    expect(read).toBeLessThan(bodies.length);
    let n = 0;
    for await (const m of store.readMessages('INBOX')) { expect(m.body.equals(bodies[m.info.uid - 1])).toBe(true); n++; }
    expect(n).toBe(bodies.length);
    await store.close();
  }, 240_000);
});
