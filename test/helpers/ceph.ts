// The throw-away single-node Ceph of the object-storage tests lives beside the bench, which
// starts it too (`npm run bench`, step tier): tools/bench/ceph.ts.
export * from '../../tools/bench/ceph.js';

import * as Minio from 'minio';
import type { Ceph } from '../../tools/bench/ceph.js';

/** An S3 client on a started Ceph's radosgw (the tests' own view of the bucket, beside the store's). */
export function cephClient(ceph: Ceph): Minio.Client {
  const u = new URL(ceph.endpoint);
  return new Minio.Client({ endPoint: u.hostname, port: Number(u.port), useSSL: false, accessKey: ceph.accessKey, secretKey: ceph.secretKey, region: 'us-east-1', pathStyle: true });
}
