// A replica whose disk fills: its rounds fail NO_SPACE (logged), it stays a prefix of its primary
// and keeps retrying; once there is room again it catches up and equals the primary. Needs root
// (a small tmpfs); skipped otherwise.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { afterEach } from 'vitest';
import { join } from 'node:path';
import { statfsSync } from 'node:fs';
import { Store } from '../../src/store/store.js';
import { startPrimary } from '../../src/replication/primary.js';
import { startReplica } from '../../src/replication/replica.js';
import { tmpDir } from '../helpers/tmp.js';
import { keyFile, logicalState, msg, until } from './helpers.js';

const isRoot = process.getuid?.() === 0;
const mounts: string[] = [];
afterEach(() => {
  for (const dir of mounts.splice(0)) spawnSync('umount', ['-l', dir]);
});

describe('replica disk full', () => {
  it.skipIf(!isRoot)('stalls with NO_SPACE as a prefix, and catches up once space is freed', async () => {
    const mnt = tmpDir('tmpfs');
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mnt], { encoding: 'utf8' });
    if (mounted.status !== 0) return; // no mount here: nothing to show
    mounts.push(mnt);
    const key = keyFile();
    const primaryStore = await Store.open(tmpDir('primary'), { create: true });
    await primaryStore.createMailbox('INBOX');
    const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: () => undefined });
    const lines: string[] = [];
    const replica = await startReplica(join(mnt, 'r'), { primary: `127.0.0.1:${(await primary.status()).port}`, keyFile: key, log: (l) => lines.push(l) });
    try {
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 10_000, 'the mailbox on the replica');
      for (let i = 1; i <= 5; i++) await primaryStore.append('INBOX', msg(i, 100_000));
      await Promise.all(Array.from({ length: 55 }, (_, k) => primaryStore.append('INBOX', msg(k + 6, 100_000)))); // ~6 MB in all
      await until(() => lines.some((l) => /NO_SPACE|ENOSPC/.test(l)), 20_000, 'a NO_SPACE on the replica');
      expect(replica.store.changes.lastSeq).toBeLessThan(primaryStore.changes.lastSeq);
      // refused at the replica's reserve, as a delivery there would be: the disk is not filled to
      // its last byte, where the replica's own index would meet it (before: ENOSPC, 0 bytes left)
      expect(lines.find((l) => /NO_SPACE|ENOSPC/.test(l))).toMatch(/free-space reserve/);
      expect(statfsSync(mnt).bavail * statfsSync(mnt).bsize).toBeGreaterThan(64 * 1024);
      for await (const m of replica.store.messages('INBOX')) expect(await replica.store.fetch('INBOX', m.uid)).toEqual(await primaryStore.fetch('INBOX', m.uid));
      expect(spawnSync('mount', ['-o', 'remount,size=64m', mnt]).status).toBe(0);
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 30_000, 'catch-up after space was freed');
      expect(await logicalState(replica.store)).toEqual(await logicalState(primaryStore));
    } finally {
      await replica.close();
      await primary.close();
      await primaryStore.close();
    }
  }, 60_000);
});
