// A stop request (ScrubOptions.signal: the daemon stopping) during the journal and index passes,
// which once begun ran to the end (minutes on a big store, past systemd's TimeoutStopSec=30): they
// now stop between batches, the cycle is not called complete, and a budgeted run's next one checks
// those passes without reading the packs again.
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { scrub, type ScrubProgress } from '../../src/scrub/scrub.js';
import { tmpDir } from '../helpers/tmp.js';

const body = (i: number) => Buffer.from(`Subject: ${i}\r\n\r\n${'s'.repeat(3000)}${i}\r\n`);

async function filled(): Promise<Store> {
  const store = await Store.open(tmpDir('scrub-stop'), { create: true, inlineBodyBytesMax: 0 });
  await store.createMailbox('INBOX');
  for (let i = 1; i <= 60; i++) await store.append('INBOX', body(i));
  return store;
}

function stopAt(phase: ScrubProgress['phase']): { signal: AbortSignal; onProgress: (p: ScrubProgress) => void } {
  const controller = new AbortController();
  return { signal: controller.signal, onProgress: (p) => { if (p.phase === phase) controller.abort(); } };
}

describe('a scrub asked to stop after its pack pass', () => {
  it.each(['journal', 'index'] as const)('stops in the %s pass; the cycle is not complete; the next budgeted run checks the rest, clean; nothing lost', async (phase) => {
    const store = await filled();
    try {
      const stopped = await scrub(store, { timeBudgetMs: 600_000, ...stopAt(phase) });
      expect(stopped.summary.cycleComplete).toBe(false);
      expect(stopped.summary.blobsVerified).toBe(60);
      if (phase === 'journal') expect(stopped.summary.journalRecords).toBe(0);
      expect(stopped.summary.indexKeys).toBe(0);
      const next = await scrub(store, { timeBudgetMs: 600_000 });
      expect(next.findings).toEqual([]);
      expect(next.summary).toMatchObject({ cycleComplete: true, blobsVerified: 0 });
      expect(next.summary.journalRecords).toBeGreaterThan(60);
      for (let i = 1; i <= 60; i++) expect(await store.fetch('INBOX', i)).toEqual(body(i));
    } finally {
      await store.close();
    }
  });

  it('without a budget too: the journal and index passes stop, the cycle is not complete', async () => {
    const store = await filled();
    try {
      const stopped = await scrub(store, stopAt('journal'));
      expect(stopped.summary.cycleComplete).toBe(false);
      expect(stopped.summary.journalRecords).toBe(0);
      expect((await scrub(store)).summary.cycleComplete).toBe(true);
    } finally {
      await store.close();
    }
  });
});
