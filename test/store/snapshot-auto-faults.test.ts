// Automatic snapshots (StoreOptions.autoSnapshot) that fail under a running store: the store goes
// on serving and taking mail, the failures back off (a snapshot that fails in milliseconds is not
// tried again at every commit, each one a warning in the daemon's log), and once the fault is gone
// a later commit takes one by itself. FaultFS (test/sim/faultfs.ts) makes the snapshots directory
// refuse writes deterministically; a real full disk would stop the index writes beside it too.
import { afterEach, describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { limits } from '../../src/limits.js';
import { scrub } from '../../src/scrub/scrub.js';
import { isDamage } from '../../src/scrub/findings.js';
import { FaultFileSystem, type FaultKind } from '../sim/faultfs.js';
import { expectExactly } from '../sim/helpers.js';
import { tmpDir } from '../helpers/tmp.js';

const saved = { ...limits };
afterEach(() => { Object.assign(limits, saved); });

const msg = (i: number) => Buffer.from(`From: a@example.org\r\nSubject: ${i}\r\n\r\nbody ${i}\r\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('automatic snapshots failing under a running store', () => {
  for (const fault of ['EACCES', 'ENOSPC'] as FaultKind[]) {
    it(`${fault} in snapshots/: mail goes on, the failures back off instead of one a commit, and a later commit snapshots by itself`, async () => {
      // no pause after a snapshot (3 times its duration by default): on a loaded machine the first
      // one's pause outlasted the second of mail below (no failure to count), and a pause also
      // spaces failures out, which would hide a retry delay not kept
      Object.assign(limits, { snapshotEveryRecords: 5, snapshotAutoRetryMs: 400, snapshotAutoRetryMsMax: 400, snapshotAutoPauseFactor: 0 });
      const root = tmpDir('snapshot-auto-faults');
      const ffs = new FaultFileSystem({ seed: 11 });
      const failures: string[] = [];
      const taken: number[] = [];
      const store = await Store.open(root, { create: true, fs: ffs, onSnapshot: (result, error) => (error ? failures.push((error as { code: string }).code) : taken.push(result!.seq)) });
      const acked = new Map<number, Buffer>();
      const append = async (i: number) => acked.set((await store.append('INBOX', msg(i))).uid, msg(i));
      try {
        await store.createMailbox('INBOX');
        for (let i = 0; i < 10; i++) await append(i);
        for (let i = 0; i < 200 && taken.length === 0; i++) await sleep(10);
        expect(taken.length, 'a first automatic snapshot').toBeGreaterThan(0);

        ffs.failAll(fault, { pathPrefix: join(root, 'snapshots') });
        // steady mail for 1 s and 60 commits at least, well past snapshotEveryRecords: every commit
        // may start one (a count of commits in 1 s failed this on a loaded machine: 35, not 50)
        const started = Date.now();
        let i = 10;
        while (Date.now() - started < 1000 || i - 10 < 60) {
          await append(i++);
          await sleep(2);
        }
        const mailMs = Date.now() - started;
        await sleep(50);
        expect(failures.length, `failed automatic snapshots in ${mailMs} ms of mail (${i - 10} commits)`).toBeGreaterThan(0);
        // the first, then one a retry delay (400 ms) at most: 4 in the first second, as before
        expect(failures.length, 'tried again after a retry delay, not at every commit').toBeLessThanOrEqual(2 + Math.floor((mailMs + 50) / 400));
        expect(new Set(failures)).toEqual(new Set([fault === 'EACCES' ? 'ACCESS' : 'NO_SPACE']));
        await expectExactly(store, 'INBOX', acked, 'while snapshots fail');

        limits.snapshotAutoPauseFactor = saved.snapshotAutoPauseFactor; // one snapshot at a time again: none half-written at the check below
        ffs.clear();
        const before = taken.length;
        for (let tries = 0; tries < 300 && taken.length === before; tries++) {
          await append(i++);
          await sleep(10);
        }
        expect(taken.length, 'a snapshot once the fault is gone, started by a commit').toBeGreaterThan(before);
        expect(readdirSync(join(root, 'snapshots')).filter((n) => n.endsWith('.tmp')), 'no temp file left').toEqual([]);
        await expectExactly(store, 'INBOX', acked, 'after the fault');
        const report = await scrub(store);
        expect(report.findings.filter(isDamage)).toEqual([]);
      } finally {
        await store.close();
      }
    }, 30_000);
  }
});
