// The object-storage tier when the network or the object store misbehaves, against a real Ceph
// radosgw behind a local fault-injecting proxy (test/helpers/s3-fault-proxy.ts): a body changed
// under a right status, an answer cut short, an object the bucket lists but answers 404 for.
// Each asserts that no wrong byte is ever handed out, that the error says what happened, and that
// once the fault is gone every message reads back exact. Skipped (with the reason) without Ceph.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { Store } from '../../src/store/store.js';
import { MailstoreError } from '../../src/errors.js';
import { limits } from '../../src/limits.js';
import { scrub } from '../../src/scrub/scrub.js';
import { isDamage } from '../../src/scrub/findings.js';
import { Repository, lockRepository } from '../../src/backup/repository.js';
import { runBackup } from '../../src/backup/backup.js';
import { checkRepository } from '../../src/backup/check.js';
import { restoreToNewStore } from '../../src/backup/restore.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { join } from 'node:path';
import { source } from '../backup/helpers.js';
import { tmpDir } from '../helpers/tmp.js';
import { BucketFileSystem } from '../../src/objstore/bucket-fs.js';
import { cephClient, cephInstalled, createBucket, sharedCeph, type Ceph, tieredStoreRoot, listKeys } from '../helpers/ceph.js';
import { S3FaultProxy } from '../helpers/s3-fault-proxy.js';
import { codeOf } from '../helpers/errors.js';

const message = (i: number) => Buffer.from(`From: n${i}@example.org\r\nSubject: m ${i}\r\nMessage-ID: <${i}@nf>\r\n\r\n${'body line\r\n'.repeat(50 + (i * 37) % 900)}`);
const installed = cephInstalled();
if (!installed) console.log('object-storage network fault tests skipped: Ceph is not installed (apt-get install ceph-mon ceph-osd radosgw ceph-common)');

describe.skipIf(!installed)('object-storage tier behind a faulty network, on Ceph', () => {
  let ceph: Ceph;
  let proxy: S3FaultProxy;
  let buckets = 0;
  beforeAll(async () => {
    ceph = (await sharedCeph())!;
    proxy = await S3FaultProxy.start(ceph.endpoint);
  }, 180_000);
  afterAll(async () => {
    await proxy?.close();
  }, 60_000);

  /** A store whose bucket is reached through the proxy, `bodies` in INBOX, every pack moved; closed. */
  async function movedStore(bodies: Buffer[], packBytesMax = 64 * 1024): Promise<string> {
    proxy.fault = () => undefined;
    const { root } = await tieredStoreRoot(ceph, `mailstore-nf${++buckets}`, { endpoint: proxy.endpoint });
    const store = await Store.open(root, { packBytesMax });
    await store.createMailbox('INBOX');
    for (let i = 0; i < bodies.length; i += 20) await store.appendBatch('INBOX', bodies.slice(i, i + 20).map((bytes) => ({ bytes })));
    await store.tierFlush();
    expect((await store.tierStatus()).localPacks).toBe(0);
    await store.close();
    return root;
  }

  /** Replaces the object of `pack` in the last store's bucket by `change` of its bytes, behind the store. */
  async function rewriteObject(pack: string, change: (bytes: Buffer) => Buffer): Promise<void> {
    const client = cephClient(ceph);
    const bucket = `mailstore-nf${buckets}`;
    const key = (await listKeys(client, bucket)).find((k) => k.endsWith(`/${pack}.pack`))!;
    const chunks: Buffer[] = [];
    for await (const chunk of await client.getObject(bucket, key)) chunks.push(chunk as Buffer);
    await client.putObject(bucket, key, change(Buffer.concat(chunks)));
  }

  /** A backup repository under a new bucket, reached through the proxy (as `--repo s3:URL`). */
  async function s3Repository(): Promise<{ fs: BucketFileSystem; repo: Repository }> {
    proxy.fault = () => undefined;
    const bucket = `mailstore-nf${++buckets}`;
    createBucket(ceph, bucket);
    const fs = await BucketFileSystem.connect(`${proxy.endpoint}/${bucket}/repo`, { accessKey: ceph.accessKey, secretKey: ceph.secretKey });
    return { fs, repo: await Repository.open(fs, '/', { create: true }) };
  }

  /** A local store (no object store) with `bodies` in INBOX, backed up into `repo`; open. */
  async function backedUp(repo: Repository, bodies: Buffer[]): Promise<Store> {
    const store = await Store.open(tmpDir(), { create: true });
    await store.createMailbox('INBOX');
    await store.appendBatch('INBOX', bodies.map((bytes) => ({ bytes })));
    await runBackup(source(store), repo);
    return store;
  }

  it('fetchStream of a big message: a GET of its second pass that brings a changed byte is CORRUPT, never streamed; exact once the fault is gone', async () => {
    const big = Buffer.from(`From: big@example.org\r\nSubject: big\r\n\r\n${randomBytes(3 * 1024 * 1024).toString('base64')}\r\n`);
    const root = await movedStore([message(1), big]);
    const store = await Store.open(root);
    // a cache smaller than the message: the second pass fetches its blocks again, as it does for a
    // message bigger than limits.objectCacheBytes or when other reads evicted them meanwhile
    const cacheBytes = limits.objectCacheBytes;
    Object.assign(limits, { objectCacheBytes: limits.objectCacheBlockBytes });
    try {
      const streamed: Buffer[] = [];
      let failure: unknown;
      try {
        for await (const chunk of await store.fetchStream('INBOX', 2)) {
          // the first chunk comes only after the first pass verified the whole body
          if (streamed.length === 0) proxy.fault = (r) => (r.method === 'GET' ? { kind: 'flip', at: 4096 } : undefined);
          streamed.push(chunk as Buffer);
        }
      } catch (error) {
        failure = error;
      }
      proxy.fault = () => undefined;
      const out = Buffer.concat(streamed);
      expect(big.subarray(0, out.length).equals(out)).toBe(true); // what left is exact
      expect(failure).toBeInstanceOf(MailstoreError);
      expect((failure as MailstoreError).code).toBe('CORRUPT');
      expect(out.length).toBeLessThan(big.length);
      const again: Buffer[] = [];
      for await (const chunk of await store.fetchStream('INBOX', 2)) again.push(chunk as Buffer);
      expect(Buffer.concat(again).equals(big)).toBe(true);
    } finally {
      Object.assign(limits, { objectCacheBytes: cacheBytes });
      await store.close();
    }
  }, 120_000);

  it('an error answer without a Message (radosgw\'s 403 QuotaExceeded for a bucket over its quota): IO naming the answer\'s code, never an empty reason; nothing moved, and the flush after it moves every pack', async () => {
    proxy.fault = () => undefined;
    const { root } = await tieredStoreRoot(ceph, `mailstore-nf${++buckets}`, { endpoint: proxy.endpoint });
    const store = await Store.open(root, { packBytesMax: 64 * 1024 });
    await store.createMailbox('INBOX');
    const bodies = Array.from({ length: 30 }, (_, i) => message(i + 1));
    await store.appendBatch('INBOX', bodies.map((bytes) => ({ bytes })));
    proxy.fault = (r) => (r.method === 'PUT' ? { kind: 'status', status: 403, code: 'QuotaExceeded', message: '' } : undefined);
    const failure = await store.tierFlush().catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(MailstoreError);
    expect((failure as MailstoreError).code).toBe('IO');
    expect((failure as MailstoreError).message).toMatch(/failed: QuotaExceeded; is the object store reachable/);
    expect((await store.tierStatus()).remotePacks).toBe(0);
    proxy.fault = () => undefined;
    expect((await store.tierFlush()).packsMoved).toBeGreaterThan(0);
    for (const [i, bytes] of bodies.entries()) expect((await store.fetch('INBOX', i + 1)).equals(bytes)).toBe(true);
    await store.close();
  }, 120_000);

  it('a GET that brings a changed byte once: that read is CORRUPT; the next read of the message fetches it again and is exact (the bad block is not kept in the cache)', async () => {
    const bodies = Array.from({ length: 60 }, (_, i) => message(i + 1));
    const root = await movedStore(bodies);
    const store = await Store.open(root);
    try {
      let flips = 0;
      proxy.fault = (r) => (r.method === 'GET' && r.url.includes('.pack') && flips++ === 0 ? { kind: 'flip', at: 200 } : undefined);
      expect(await codeOf(store.fetch('INBOX', 1))).toBe('CORRUPT');
      expect(flips).toBe(1);
      for (let uid = 1; uid <= bodies.length; uid++) expect((await store.fetch('INBOX', uid)).equals(bodies[uid - 1])).toBe(true);
      expect((await scrub(store)).findings.filter(isDamage)).toEqual([]);
    } finally {
      proxy.fault = () => undefined;
      await store.close();
    }
  }, 120_000);

  it('an object damaged in the bucket after its blocks were read into the cache: scrub reads the bucket, not the cache, and reports it', async () => {
    const bodies = Array.from({ length: 60 }, (_, i) => message(i + 1));
    const root = await movedStore(bodies);
    const store = await Store.open(root);
    try {
      for (let uid = 1; uid <= bodies.length; uid++) expect((await store.fetch('INBOX', uid)).equals(bodies[uid - 1])).toBe(true); // every block cached
      await rewriteObject('00000002', (object) => {
        object[object.length - 100] ^= 0x5a; // inside the pack's last message
        return object;
      });
      const report = await scrub(store);
      expect(report.findings.filter(isDamage).map((f) => [f.kind, 'pack' in f ? f.pack : undefined])).toEqual([['blob-corrupt', 2]]);
    } finally {
      await store.close();
    }
  }, 120_000);

  it('an object cut shorter than recorded in the bucket: reads past its new end are CORRUPT (not IO: the answer was 416), and scrub reports the messages there', async () => {
    const bodies = Array.from({ length: 24 }, (_, i) => Buffer.from(`Subject: big ${i}\r\n\r\n${randomBytes(96 * 1024).toString('base64')}\r\n`));
    const root = await movedStore(bodies, limits.tierPackBytesMax); // one pack of several 1 MiB blocks
    await rewriteObject('00000001', (object) => object.subarray(0, 100 * 1024));
    const store = await Store.open(root);
    try {
      expect(await codeOf(store.fetch('INBOX', bodies.length))).toBe('CORRUPT'); // its block starts past the object's end
      const report = await scrub(store);
      const missing = report.findings.filter((f) => f.kind === 'blob-missing' || f.kind === 'blob-corrupt');
      expect(missing.length).toBeGreaterThan(bodies.length / 2);
      expect(report.findings.filter(isDamage).every((f) => f.kind === 'blob-missing' || f.kind === 'blob-corrupt')).toBe(true);
    } finally {
      await store.close();
    }
  }, 120_000);

  it('an s3: backup repository: a lock of another run that does not read (503) keeps forget/prune out, never taken for no lock', async () => {
    const { fs, repo } = await s3Repository();
    const backup = await lockRepository(repo, false); // a backup under way (this live process)
    try {
      proxy.fault = (r) => (r.method === 'GET' && r.url.includes('/locks/') ? { kind: 'status', status: 503, code: 'SlowDown' } : undefined);
      const failure = await lockRepository(repo, true).then(async (lock) => { await lock.release(); return undefined; }, (error: unknown) => error);
      expect(failure).toBeInstanceOf(MailstoreError);
      expect((failure as MailstoreError).code).toBe('IO');
      proxy.fault = () => undefined;
      expect(await codeOf(lockRepository(repo, true))).toBe('LOCKED'); // read, the backup's lock keeps it out
      expect((await fs.readdir('/locks')).length).toBe(1); // no lock of the refused runs left behind
    } finally {
      proxy.fault = () => undefined;
      await backup.release();
      await repo.close();
    }
  }, 120_000);

  it('an s3: backup repository: check with a data, index or snapshot file whose GETs fail (503) is IO: never a clean report of what it could not read, nor damage', async () => {
    const { repo } = await s3Repository();
    const store = await backedUp(repo, Array.from({ length: 20 }, (_, i) => message(i + 1)));
    try {
      expect((await checkRepository(repo, { readData: true })).summary.damage).toBe(0);
      proxy.fault = (r) => (r.method === 'GET' && r.url.includes('/data/') ? { kind: 'status', status: 503, code: 'SlowDown' } : undefined);
      const report = await checkRepository(repo, { readData: true }).catch((error: unknown) => error);
      expect(report).toBeInstanceOf(MailstoreError);
      expect((report as MailstoreError).code).toBe('IO');
      // an index or snapshot file that does not answer is not a damaged one either
      for (const area of ['/index/', '/snapshots/']) {
        proxy.fault = (r) => (r.method === 'GET' && r.url.includes(area) ? { kind: 'status', status: 503, code: 'SlowDown' } : undefined);
        const metadata = await checkRepository(repo).catch((error: unknown) => error);
        expect(metadata, area).toBeInstanceOf(MailstoreError);
        expect((metadata as MailstoreError).code).toBe('IO');
      }
      proxy.fault = () => undefined;
      const again = await checkRepository(repo, { readData: true });
      expect(again.summary.damage).toBe(0);
      expect(again.summary.bytesRead).toBeGreaterThan(0);
    } finally {
      proxy.fault = () => undefined;
      await repo.close();
      await store.close();
    }
  }, 120_000);

  it('an s3: backup repository: a restore whose data GET is cut short is IO (the object store), not CORRUPT (the repository); the restore after it is exact', async () => {
    const { repo } = await s3Repository();
    const bodies = Array.from({ length: 12 }, (_, i) => message(i + 1));
    const store = await backedUp(repo, bodies);
    const target = join(tmpDir(), 'restored');
    try {
      let gets = 0;
      proxy.fault = (r) => (r.method === 'GET' && r.url.includes('/data/') && ++gets === 2 ? { kind: 'cut', afterBytes: 100 } : undefined);
      const failure = await restoreToNewStore(nodeFileSystem, repo, 'latest', target).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(MailstoreError);
      expect((failure as MailstoreError).code).toBe('IO');
      expect((failure as MailstoreError).message).toContain(proxy.endpoint);
      proxy.fault = () => undefined;
      expect((await restoreToNewStore(nodeFileSystem, repo, 'latest', target)).messages).toBe(bodies.length);
      const restored = await Store.open(target);
      for (let uid = 1; uid <= bodies.length; uid++) expect((await restored.fetch('INBOX', uid)).equals(bodies[uid - 1])).toBe(true);
      await restored.close();
    } finally {
      proxy.fault = () => undefined;
      await repo.close();
      await store.close();
    }
  }, 120_000);

  it('a slow link that keeps moving bytes: a read that takes longer than limits.objectRequestTimeoutMs completes; a request with no progress still fails IO', async () => {
    const bodies = Array.from({ length: 8 }, (_, i) => Buffer.from(`Subject: slow ${i}\r\n\r\n${randomBytes(60 * 1024).toString('base64')}\r\n`));
    const { root } = await tieredStoreRoot(ceph, `mailstore-nf${++buckets}`, { endpoint: proxy.endpoint });
    const timeoutMs = limits.objectRequestTimeoutMs;
    // 1.2 s without progress fails; the slow read below moves bytes every 120 ms and takes ~2.4 s:
    // ten times the gap it may show, so a loaded machine's stalls (seen at 400 ms) do not fail it
    Object.assign(limits, { objectRequestTimeoutMs: 1200 });
    let store = await Store.open(root);
    try {
      await store.createMailbox('INBOX');
      await store.appendBatch('INBOX', bodies.map((bytes) => ({ bytes }))); // one pack of ~650 KB
      expect((await store.tierFlush()).packsMoved).toBe(1);
      await store.close();
      store = await Store.open(root); // a cold cache: the block comes through the slow link
      // ~650 KB at 32 KiB every 120 ms: about 2.4 s, twice the timeout, bytes arriving every 120 ms (an
      // upload's bytes go into loopback's socket buffers at once: only a real link shows its pace to the sender)
      proxy.fault = (r) => (r.method === 'GET' ? { kind: 'slow', chunkBytes: 32 * 1024, delayMs: 120 } : undefined);
      expect((await store.fetch('INBOX', 8)).equals(bodies[7])).toBe(true);
      await store.close();
      store = await Store.open(root);
      proxy.fault = (r) => (r.method === 'GET' ? { kind: 'hang' } : undefined);
      const failure = await store.fetch('INBOX', 1).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(MailstoreError);
      expect((failure as MailstoreError).code).toBe('IO');
    } finally {
      proxy.fault = () => undefined;
      Object.assign(limits, { objectRequestTimeoutMs: timeoutMs });
      await store.close();
    }
  }, 120_000);

  it('an object the store records but the bucket answers 404 for: scrub reports its messages blob-missing (mailbox, uid) and checks the rest, in both modes; clean once it answers again', async () => {
    const bodies = Array.from({ length: 60 }, (_, i) => message(i + 1));
    const root = await movedStore(bodies);
    const store = await Store.open(root);
    try {
      expect((await store.tierStatus()).remotePacks).toBeGreaterThan(2);
      const missing = '/00000002.pack';
      proxy.fault = (r) => (r.url.includes(missing) ? { kind: 'status', status: 404, code: 'NoSuchKey' } : undefined);
      const expectedUids: number[] = [];
      for (let uid = 1; uid <= bodies.length; uid++) {
        const read = await store.fetch('INBOX', uid).then((b) => b.equals(bodies[uid - 1]), (error: unknown) => error);
        if (read === true) continue;
        expect((read as MailstoreError).code).toBe('CORRUPT'); // refused, never other bytes
        expectedUids.push(uid);
      }
      expect(expectedUids.length).toBeGreaterThan(0);
      for (const objects of ['read', 'checksum'] as const) {
        const report = await scrub(store, { objects });
        const damage = report.findings.filter(isDamage);
        expect(damage.every((f) => f.kind === 'blob-missing' && f.pack === 2)).toBe(true);
        expect(damage.flatMap((f) => (f.kind === 'blob-missing' ? f.refs : [])).map((r) => r.uid).sort((a, b) => a - b)).toEqual(expectedUids);
        expect(report.summary.cycleComplete).toBe(true);
      }
      proxy.fault = () => undefined;
      expect((await scrub(store)).findings.filter(isDamage)).toEqual([]);
    } finally {
      proxy.fault = () => undefined;
      await store.close();
    }
  }, 120_000);
});
