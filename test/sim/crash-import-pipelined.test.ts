// Crash states of a pipelined import (src/store/writer.ts, "Pipelined"): the writer prepares batch
// N+1 and copies its bodies into the pack while batch N's fdatasyncs run. At every point of the
// recorded operations, in every crash mode (all-lost, all-kept, data-lost, random), with the index lost (rebuilt
// from the journal): the store opens undegraded and holds its first message and batches 1..k
// exactly, for some k no smaller than the number of batches acknowledged by then (never a later
// batch without an earlier one, never part of a batch), and scrub finds nothing but dead bytes (informational findings).
import { describe, expect, it, vi } from 'vitest';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import type { CommitChain } from '../../src/store/writer.js';
import { scrub } from '../../src/scrub/scrub.js';
import { INFORMATIONAL } from '../../src/scrub/findings.js';
import { limits } from '../../src/limits.js';
import { FaultFileSystem, type CrashMode } from './faultfs.js';
import { fastTmpRoot, retireOwnLock } from './explorer.js';
import { msg } from './helpers.js';
import { internalsOf } from '../helpers/internals.js';

const OPTIONS = { inlineBodyBytesMax: 0, packBytesMax: 40 * 1024, journalSegmentBytesMax: 4096, autoSnapshot: false } as const;
const BATCHES = 5;

describe('crash states of a pipelined import', () => {
  it('every crash point recovers batches 1..k whole, k at least the batches acknowledged, index lost', async () => {
    const saved = { ...limits };
    const work = await fsp.mkdtemp(join(fastTmpRoot(), 'crash-pipelined-'));
    try {
      limits.batchBlobBytesMax = 1; // one appendBatch a writer batch
      const dir = join(work, 'store');
      const init = await Store.open(dir, { create: true, ...OPTIONS });
      await init.createMailbox('INBOX');
      await init.append('INBOX', msg('first'));
      await init.close();
      const ffs = new FaultFileSystem({ seed: 0x91fe });
      await ffs.startRecording(dir, { exclude: ['index'] });
      const store = await Store.open(dir, { fs: ffs, ...OPTIONS });
      // each pack fdatasync held back a little, so the next batch is prepared and copied inside it
      const packs = internalsOf(store).packs;
      const sync = packs.sync.bind(packs);
      vi.spyOn(packs, 'sync').mockImplementation(async () => {
        await new Promise((resolve) => setTimeout(resolve, 15));
        return sync();
      });
      const writeAfter = vi.spyOn(packs, 'writeAfter');
      const groups = Array.from({ length: BATCHES }, (_, b) => Array.from({ length: 3 }, (_, i) => msg(`b${b}-m${i}`, 3000 + 700 * i + 100 * b)));
      groups[3][1] = groups[1][2]; // deduplicated against an earlier batch
      const from = ffs.logLength;
      const acked: number[] = []; // the log length when each batch was acknowledged
      const chain: CommitChain = {};
      await Promise.all(groups.map((items, b) => store.appendBatch('INBOX', items.map((bytes) => ({ bytes })), { chain }).then(() => { acked[b] = ffs.logLength; })));
      await store.close();
      vi.restoreAllMocks();
      expect(writeAfter.mock.calls.length, 'bodies copied while the batch before synced').toBeGreaterThan(0);
      const modes: CrashMode[] = ['all-lost', 'all-kept', 'data-lost', 'random'];
      let states = 0;
      for (let afterOp = from; afterOp <= ffs.logLength; afterOp++) {
        for (const mode of modes) {
          const target = await fsp.mkdtemp(join(work, 'state-'));
          const report = await ffs.materializeCrash(target, afterOp, 0x33 + afterOp, { mode, indexMode: 'missing' });
          retireOwnLock(target);
          const where = report.reproduce;
          const reopened = await Store.open(target, OPTIONS);
          try {
            expect(reopened.health.degraded, `${where}: ${reopened.health.findings.join('; ')}`).toBe(false);
            const got: Buffer[] = [];
            for await (const m of reopened.readMessages('INBOX')) {
              expect(m.info.uid, where).toBe(got.length + 1);
              got.push(m.body);
            }
            expect(got[0], where).toEqual(msg('first'));
            const whole = (got.length - 1) / 3;
            expect(Number.isInteger(whole), `${where}: ${got.length - 1} messages are not whole batches`).toBe(true);
            expect(got.slice(1), where).toEqual(groups.slice(0, whole).flat());
            expect(whole, `${where}: batches acknowledged by then are gone`).toBeGreaterThanOrEqual(acked.filter((n) => n <= afterOp).length);
            const findings = (await scrub(reopened)).findings.filter((f) => !INFORMATIONAL.has(f.kind)); // torn, unacknowledged pack bytes are dead bytes
            expect(findings, `${where}: ${JSON.stringify(findings)}`).toEqual([]);
          } finally {
            await reopened.close();
          }
          await fsp.rm(target, { recursive: true, force: true });
          states++;
        }
      }
      console.info(`pipelined import crash points: ${ffs.logLength - from + 1}, ${states} states`);
      expect(states).toBe((ffs.logLength - from + 1) * modes.length);
    } finally {
      Object.assign(limits, saved);
      await fsp.rm(work, { recursive: true, force: true });
    }
  }, 300_000);
});
