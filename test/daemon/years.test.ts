// Years of a daemon's life (`mailstore serve`, a real process) compressed into cycles: deliveries
// through the client (inline and packed), expunges, flags, mailboxes and users made and deleted,
// quotas changed, scrub, backups with `forget --prune`, explicit compactions and snapshots beside
// the automatic ones, and a SIGKILL now and then with deliveries in flight. The daemon runs the
// built CLI with its limits shortened (tests only: a preload of dist/src/limits.js), so a cycle is a
// "month". After each cycle every kind of file is counted, with the daemon's descriptors and RSS;
// at the end what must follow live data (not history) is asserted bounded. YEARS_CYCLES=N runs N
// cycles (default a few: under a minute).
import type { ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { Client } from '../../src/client/client.js';
import type { MailstoreError } from '../../src/errors.js';
import { Store } from '../../src/store/store.js';
import { tempDir } from '../cli/helpers.js';
import { serve } from './processes.js';
import { json, ok } from '../cli/in-process.js';
import { churnMessage, describeUse, expectBoundedRepository, expectBoundedStore, filesByDirectory, userMonth } from '../helpers/disk-use.js';

const CYCLES = Number(process.env.YEARS_CYCLES ?? 6);
/** Months before the bounds apply: users and mailboxes reach their steady number. */
const WARM_UP = 3;
const LIMITS = {
  snapshotEveryRecords: 100, snapshotAutoPauseFactor: 0, journalSegmentBytesMax: 64 * 1024, journalPreallocateBytes: 4096,
  packBytesMax: 256 * 1024, compactGraceMs: 0, compactIntervalMs: 50, compactDeadBytesMin: 0, compactBackoffMsMax: 200,
};
let daemon: ChildProcess | undefined;
afterEach(() => { daemon?.kill('SIGKILL'); daemon = undefined; });

async function serveShortened(store: string): Promise<ChildProcess> {
  return (await serve(store, [], { limits: LIMITS })).child;
}

function processHoldings(pid: number): { files: number; rssBytes: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { files: readdirSync(`/proc/${pid}/fd`).length, rssBytes: Number(/VmRSS:\s+(\d+)/.exec(status)![1]) * 1024 };
}

describe('years of a daemon', () => {
  it('files, descriptors and RSS follow live data through deliveries, deletes, crashes, scrubs, backups and compactions', async () => {
    const base = tempDir('mailstore-years-');
    const store = join(base, 'store');
    const repo = join(base, 'repo');
    await (await Store.init(store)).close();
    daemon = await serveShortened(store);
    const socket = join(store, 'run', 'mailstore.sock');
    let client = await Client.connect(socket);
    const acknowledged = new Map<string, Set<number>>(); // mailbox -> uids acknowledged and not expunged
    const live = new Set<number>();
    const report: unknown[] = [];
    let baseline: { files: number; rssBytes: number } | undefined;
    const serial = { next: 0 };
    let crashes = 0;
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      await client.createMailbox(`user/u${cycle}/INBOX`, { owner: `u${cycle}` });
      await ok(['quota', 'set', `user/u${cycle}`, '--storage', `${10 + cycle}M`, '--messages', `${1000 + cycle}`], { store });
      acknowledged.set(`user/u${cycle}/INBOX`, new Set());
      live.add(cycle);
      for (const u of live) {
        const uids = acknowledged.get(`user/u${u}/INBOX`)!;
        const { appended, expunged } = await userMonth(client, u, cycle, serial, 40_000);
        for (const uid of appended) uids.add(uid);
        for (const uid of expunged) uids.delete(uid);
      }
      if (live.size > 3) {
        const gone = Math.min(...live);
        await ok(['user', 'delete', `u${gone}`, '--force'], { store });
        live.delete(gone);
        acknowledged.delete(`user/u${gone}/INBOX`);
      }
      await ok(['scrub', '--quiet'], { store });
      await ok(['backup', '--repo', repo], { store });
      await ok(['backup', 'forget', '--repo', repo, '--keep-last', '2', '--prune'], { store });
      if (cycle % 2 === 1) {
        await ok(['compact'], { store });
        await ok(['snapshot'], { store });
      }
      if (cycle % 3 === 2) { // a crash with deliveries in flight
        const inbox = `user/u${cycle}/INBOX`;
        const inFlight = Array.from({ length: 8 }, (_, i) => client.append(inbox, churnMessage(cycle, serial.next++, i % 2 ? 40_000 : 300)).then(
          (r) => acknowledged.get(inbox)!.add(r.uid), (e: MailstoreError) => e.code));
        await sleep(5);
        daemon.kill('SIGKILL');
        crashes++;
        await Promise.all(inFlight);
        await client.close();
        await new Promise((resolve) => daemon!.once('exit', resolve));
        daemon = await serveShortened(store);
        client = await Client.connect(socket);
      }
      for (const [mailbox, uids] of acknowledged) { // nothing acknowledged lost
        const present = new Set<number>();
        for await (const info of client.messages(mailbox)) present.add(info.uid);
        for (const uid of uids) expect(present.has(uid), `${mailbox} ${uid}`).toBe(true);
      }
      await sleep(300); // the background compactor's round and snapshot after the cycle's work (the bounds hold either way)
      const stats = await json(['stats', '--json'], { store }) as { messages: number; bytesReferenced: number; quarantine: { entries: number } };
      const dirs = filesByDirectory(store);
      const repoUse = filesByDirectory(repo);
      const holdings = processHoldings(daemon.pid!);
      report.push({ cycle, messages: stats.messages, ...holdings, store: describeUse(dirs), repo: describeUse(repoUse) });
      if (cycle < WARM_UP) continue;
      baseline ??= holdings;
      // a crash may tear the journal's tail at most once (its copy in quarantine/, never removed automatically)
      expect(stats.quarantine.entries).toBeLessThanOrEqual(crashes);
      expectBoundedStore(`month ${cycle}`, dirs, store, stats.bytesReferenced, { livePids: [daemon.pid!], packBytesMax: LIMITS.packBytesMax, journalSegmentBytesMax: LIMITS.journalSegmentBytesMax, quarantineMax: crashes });
      expectBoundedRepository(repoUse);
      expect(holdings.files, `month ${cycle}: the daemon's descriptors`).toBeLessThanOrEqual(baseline.files + 8);
      expect(holdings.rssBytes, `month ${cycle}: the daemon's RSS`).toBeLessThanOrEqual(Math.max(2 * baseline.rssBytes, 300 * 1024 * 1024));
    }
    await client.close();
    daemon.kill('SIGTERM');
    await new Promise((resolve) => daemon!.once('exit', resolve));
    daemon = undefined;
    // open and rebuild replay what the journal retains (bounded above), not the years behind it
    let started = performance.now();
    await (await Store.open(store)).close();
    const openMs = performance.now() - started;
    rmSync(join(store, 'index'), { recursive: true });
    started = performance.now();
    const rebuilt = await Store.open(store);
    const rebuildMs = performance.now() - started;
    for (const [mailbox, uids] of acknowledged) {
      for (const uid of uids) expect((await rebuilt.messageInfo(mailbox, uid)).uid).toBe(uid);
    }
    await rebuilt.close();
    if (process.env.YEARS_REPORT) console.log(JSON.stringify({ report, openMs, rebuildMs }));
  }, 900_000);
});
