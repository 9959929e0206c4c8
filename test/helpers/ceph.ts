// The throw-away single-node Ceph of the object-storage tests lives beside the bench, which
// starts it too (`npm run bench`, step tier): tools/bench/ceph.ts.
export * from '../../tools/bench/ceph.js';
