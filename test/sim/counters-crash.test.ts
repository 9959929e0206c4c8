// Counters under crashes of the multi-step user operations the crash explorers' workload does not
// run: a crash at every mutating operation of a user delete (intent record, then chunks), a user
// rename (quota roots moved in the same record), moves across quota roots and a compaction, in a
// rotating crash mode with index/ missing or an older copy, opens with every counter (mailbox
// counts, refcounts, quota usage per root, stats, usage) equal to what the records add up to, and
// scrub clean. CRASH_POINTS=all: every mode at every point.
import { expect, it } from 'vitest';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { limits } from '../../src/limits.js';
import { setQuota } from '../../src/store/quota.js';
import { scrub } from '../../src/scrub/scrub.js';
import { isDamage } from '../../src/scrub/findings.js';
import { FaultFileSystem, type CrashMode } from './faultfs.js';
import { fastTmpRoot } from './explorer.js';
import { recount } from '../helpers/recount.js';

const message = (i: number) => Buffer.from(`Subject: ${i}\r\n\r\nbody ${i} ${'y'.repeat((i * 37) % 500)}\r\n`);
const MODES: CrashMode[] = ['all-lost', 'random', 'all-kept', 'data-lost'];
const OPTIONS = { inlineBodyBytesMax: 0 };

/** bob (two mailboxes, empty folders, quota root) and alice (a nested root on Archive), bodies shared between them. */
async function users(dir: string): Promise<void> {
  const store = await Store.open(dir, { create: true, ...OPTIONS });
  for (const name of ['user/bob/INBOX', 'user/bob/Sent', 'user/alice/INBOX', 'user/alice/Archive']) await store.createMailbox(name);
  for (let i = 1; i <= 7; i++) await store.createMailbox(`user/bob/Folder${i}`);
  await setQuota(store, 'user/bob', { messages: 100 });
  await setQuota(store, 'user/alice', { messages: 100 });
  await setQuota(store, 'user/alice/Archive', { storage: 100_000 });
  for (let i = 1; i <= 12; i++) await store.append(i % 2 ? 'user/bob/INBOX' : 'user/bob/Sent', message(i % 7));
  for (let i = 1; i <= 6; i++) await store.append('user/alice/INBOX', message(i % 5));
  await store.copy('user/bob/INBOX', [1, 3, 5], 'user/alice/INBOX');
  await store.close();
}

it('a crash at every operation of a user delete, a user rename, moves across quota roots and a compaction: every counter adds up after the open, scrub clean', async () => {
  const saved = [limits.deleteChunkMessages, limits.deleteChunkMailboxes];
  const tunable = limits as { deleteChunkMessages: number; deleteChunkMailboxes: number };
  // bob's delete in several chunks: expunges of two mailboxes in one record, ends of several
  [tunable.deleteChunkMessages, tunable.deleteChunkMailboxes] = [4, 3];
  const work = await fsp.mkdtemp(join(fastTmpRoot(), 'counters-crash-'));
  try {
    const dir = join(work, 'store');
    await users(dir);
    const ffs = new FaultFileSystem({ seed: 0xc0117 });
    await ffs.startRecording(dir, { exclude: ['index'] });
    const older = join(work, 'index-before');
    await ffs.snapshotExcluded(older);
    const store = await Store.open(dir, { fs: ffs, ...OPTIONS });
    const opened = ffs.logLength;
    await store.move('user/alice/INBOX', [1, 2, 7], 'user/alice/Archive');
    await store.deleteUser('bob');
    await store.renameUser('alice', 'carol');
    await store.move('user/carol/Archive', [1], 'user/carol/INBOX');
    await store.expunge('user/carol/INBOX', [3, 4]);
    await store.compact({ graceMs: 0 });
    await store.close();
    let states = 0;
    for (let afterOp = opened; afterOp <= ffs.logLength; afterOp++) {
      const modes = process.env.CRASH_POINTS === 'all' ? MODES : [MODES[afterOp % MODES.length]];
      for (const mode of modes) {
        const target = join(work, `crash-${afterOp}-${mode}`);
        const indexMode = states % 2 === 0 ? 'missing' : 'older';
        const report = await ffs.materializeCrash(target, afterOp, 0xc0117 + afterOp, { mode, indexMode, indexSource: older });
        const crashed = await Store.open(target, OPTIONS);
        try {
          const where = `${report.reproduce} index ${indexMode}`;
          expect(await recount(crashed), where).toEqual([]);
          expect((await scrub(crashed)).findings.filter(isDamage), where).toEqual([]);
        } finally {
          await crashed.close();
        }
        await fsp.rm(target, { recursive: true, force: true });
        states++;
      }
    }
    expect(states).toBeGreaterThan(20);
  } finally {
    [tunable.deleteChunkMessages, tunable.deleteChunkMailboxes] = saved;
    await fsp.rm(work, { recursive: true, force: true });
  }
}, 120_000);
