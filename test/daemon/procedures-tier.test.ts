// `mailstore tier status` and `tier flush` beside a running `mailstore serve`, against a real Ceph
// radosgw on loopback (test/helpers/ceph.ts): the daemon moves the sealed packs to the bucket and
// keeps serving every message exact from there. --no-wait: a command that opened the store itself
// would fail LOCKED, so exit 0 means the daemon ran it. Skipped (with the reason) without Ceph.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { scrub } from '../../src/scrub/scrub.js';
import { cephCredentials, cephInstalled, createBucket, sharedCeph, type Ceph } from '../helpers/ceph.js';
import { json, ok, requireBuilt, run, tempDir } from '../cli/helpers.js';
import { message, serve } from './processes.js';

const installed = cephInstalled();
if (!installed) console.log('tier-through-the-daemon test skipped: Ceph is not installed (apt-get install ceph-mon ceph-osd radosgw ceph-common)');

const localPackBytes = (root: string) => readdirSync(join(root, 'packs')).filter((n) => n.endsWith('.pack')).reduce((s, n) => s + statSync(join(root, 'packs', n)).size, 0);

describe.skipIf(!installed)('tier through the daemon (Ceph)', () => {
  let ceph: Ceph;
  beforeAll(async () => {
    requireBuilt();
    ceph = (await sharedCeph())!;
  }, 180_000);

  it('tier status, tier flush --json, tier status: the packs move, every message reads back exact through the daemon and after it stopped', async () => {
    createBucket(ceph, 'mailstore-daemon-tier');
    const dir = tempDir('mailstore-tier-daemon-');
    const root = join(dir, 'store');
    const credentials = cephCredentials(ceph, dir);
    await ok(['init', '--object-store', `${ceph.endpoint}/mailstore-daemon-tier`, '--object-store-credentials', credentials], { store: root });
    await ok(['mailbox', 'create', 'INBOX'], { store: root });
    const bodies = Array.from({ length: 120 }, (_, i) => message(i + 1));
    const store = await Store.open(root);
    await store.appendBatch('INBOX', bodies.map((bytes) => ({ bytes })));
    await store.close();
    const total = localPackBytes(root);

    const daemon = await serve(root);
    try {
      const before = await json(['tier', 'status', '--no-wait'], { store: root });
      expect(before).toMatchObject({ remotePacks: 0, remoteBytes: 0, localBytes: total });
      const flushed = await json(['tier', 'flush', '--no-wait'], { store: root });
      expect(flushed.packsMoved).toBe(1);
      expect(flushed.bytesMoved).toBe(total);
      expect(localPackBytes(root)).toBe(0);
      const after = await json(['tier', 'status', '--no-wait'], { store: root });
      expect(after).toMatchObject({ remotePacks: 1, localBytes: 0, localShare: 0 });
      for (const uid of [1, 60, 120]) {
        const fetched = await run(['fetch', 'INBOX', String(uid), '--no-wait'], { store: root });
        expect(fetched.code, fetched.stderr).toBe(0);
        expect(fetched.stdout.equals(bodies[uid - 1]!)).toBe(true);
      }
    } finally {
      daemon.child.kill('SIGTERM');
      expect(await daemon.exited, daemon.stderr()).toBe(0);
    }
    const again = await Store.open(root);
    try {
      for (let uid = 1; uid <= bodies.length; uid++) expect((await again.fetch('INBOX', uid)).equals(bodies[uid - 1]!)).toBe(true);
      expect((await scrub(again)).findings).toEqual([]);
    } finally {
      await again.close();
    }
  }, 180_000);
});
