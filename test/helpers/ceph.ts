// The throw-away single-node Ceph of the object-storage tests lives beside the bench, which
// starts it too (`npm run bench`, step tier): tools/bench/ceph.ts.
export * from '../../tools/bench/ceph.js';

import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as Minio from 'minio';
import { createBucket, startCeph, type Ceph } from '../../tools/bench/ceph.js';
import { Store } from '../../src/store/store.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { writeTierSettings } from '../../src/store/tier.js';
import { unopenedRoot } from '../../src/store/unopened-root.js';
import type { TierPolicy } from '../../src/store/tier-policy.js';
import { tmpDir } from './tmp.js';

let shared: Promise<Ceph | undefined> | undefined;

/**
 * The Ceph of this worker process, started by the first test file that asks and kept for the files
 * the worker runs after it (vitest.config.ts: they share a worker): a start cost ~5 s in each of
 * the ten files that use one. Each file keeps to buckets of its own names and leaves the gateway
 * up. Its daemons are killed and its directory removed once the worker is gone (vitest ends one
 * with SIGTERM, which runs no exit handler), by a shell that waits for that; a start that failed
 * is tried again by the next file.
 */
export function sharedCeph(): Promise<Ceph | undefined> {
  shared ??= startCeph().then((ceph) => {
    if (ceph) {
      const reaper = 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; for f in "$2"/run/*.pid; do kill -9 "$(cat "$f")" 2>/dev/null; done; rm -rf "$2"';
      spawn('sh', ['-c', reaper, 'ceph-reaper', String(process.pid), ceph.dir], { detached: true, stdio: 'ignore' }).unref();
    }
    return ceph;
  }, (error: unknown) => {
    shared = undefined;
    throw error;
  });
  return shared;
}

/** An S3 client on a started Ceph's radosgw (the tests' own view of the bucket, beside the store's). */
export function cephClient(ceph: Ceph): Minio.Client {
  const u = new URL(ceph.endpoint);
  return new Minio.Client({ endPoint: u.hostname, port: Number(u.port), useSSL: false, accessKey: ceph.accessKey, secretKey: ceph.secretKey, region: 'us-east-1', pathStyle: true });
}

/** An access-key file for `ceph` (`ACCESS:SECRET`, mode 0600, as `--object-store-credentials` and `--repo-credentials` want it) in `dir`. */
export function cephCredentials(ceph: Ceph, dir: string): string {
  const credentials = join(dir, 'cred');
  writeFileSync(credentials, `${ceph.accessKey}:${ceph.secretKey}\n`, { mode: 0o600 });
  return credentials;
}

/**
 * A new, closed store whose object store is `bucket` (created here) on `ceph`, reached at
 * `endpoint` (default: radosgw itself; a fault proxy in front of it otherwise).
 */
export async function tieredStoreRoot(ceph: Ceph, bucket: string, options: { endpoint?: string; policy?: TierPolicy } = {}): Promise<{ root: string; credentials: string }> {
  createBucket(ceph, bucket);
  const root = tmpDir();
  const credentials = cephCredentials(ceph, tmpDir());
  await (await Store.open(root, { create: true })).close();
  await writeTierSettings(unopenedRoot(nodeFileSystem, root), { url: `${options.endpoint ?? ceph.endpoint}/${bucket}`, credentials, ...(options.policy ? { policy: options.policy } : {}) });
  return { root, credentials };
}

/** Every key in the bucket, sorted (the tests' own listing, beside the store's). */
export async function listKeys(client: Minio.Client, bucket: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const keys: string[] = [];
    const stream = client.listObjectsV2(bucket, '', true);
    stream.on('data', (o) => o.name && keys.push(o.name));
    stream.on('error', reject);
    stream.on('end', () => resolve(keys.sort()));
  });
}
