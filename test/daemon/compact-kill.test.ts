// The daemon SIGKILLed while it compacts (`mailstore compact` run through it): the new pack it was
// writing (NNNNNNNN.pack.partial) is gone once the next daemon has opened the store, however many
// times it happens (not only at the next compaction, which a daemon runs only past
// limits.compactDeadBytesMin); every message reads back exact, a compaction then finishes, scrub
// is clean.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { finish, requireBuilt, start, tempDir } from '../cli/helpers.js';
import { Store } from '../../src/store/store.js';
import { scrub } from '../../src/scrub/scrub.js';
import { isDamage } from '../../src/scrub/findings.js';
import { expectExactly } from '../sim/helpers.js';
import { serve, type Daemon } from './processes.js';

beforeAll(requireBuilt);

const partials = (store: string) => readdirSync(join(store, 'packs')).filter((n) => n.endsWith('.pack.partial'));

/** 240 messages of ~200 KB in one pack, 3 of every 4 expunged: a compaction copies ~12 MB. */
async function churnedStore(): Promise<{ store: string; acked: Map<number, Buffer> }> {
  const store = join(tempDir('mailstore-compact-kill-'), 'store');
  const opened = await Store.open(store, { create: true, inlineBodyBytesMax: 0, autoSnapshot: false });
  const acked = new Map<number, Buffer>();
  try {
    await opened.createMailbox('M');
    const items = Array.from({ length: 240 }, (_, i) => ({ bytes: Buffer.from(`Subject: ${i}\r\n\r\n${`${i} `.repeat(200_000 / (String(i).length + 1))}\r\n`) }));
    const results = await opened.appendBatch('M', items);
    results.forEach((r, i) => acked.set(r.uid, items[i].bytes));
    const gone = [...acked.keys()].filter((uid) => uid % 4 !== 0);
    await opened.expunge('M', gone);
    for (const uid of gone) acked.delete(uid);
  } finally {
    await opened.close();
  }
  return { store, acked };
}

/** Starts `mailstore compact` through the daemon and SIGKILLs the daemon once the new pack appears; whether it was still partial then. */
async function killWhilePartial(store: string, daemon: Daemon): Promise<boolean> {
  const compact = finish(start(['compact'], { store }));
  const deadline = Date.now() + 20_000;
  while (partials(store).length === 0 && Date.now() < deadline) await sleep(1);
  daemon.child.kill('SIGKILL');
  await daemon.exited;
  await compact;
  return partials(store).length > 0;
}

describe('the daemon killed while it compacts', () => {
  it('SIGKILL while the new pack is written: the partial pack is removed by the next open, each time; nothing lost, a later compaction finishes, scrub clean', async () => {
    const { store, acked } = await churnedStore();
    let hits = 0;
    for (let round = 0; round < 8 && hits < 3; round++) {
      const daemon = await serve(store);
      const left = partials(store);
      if (round > 0 && left.length > 0) {
        daemon.child.kill('SIGTERM'); // not left running by a failed check
        await daemon.exited;
      }
      expect(left, `round ${round}: after the restarted daemon opened the store`).toEqual([]);
      if (await killWhilePartial(store, daemon)) hits++;
      else if (!readdirSync(join(store, 'packs')).includes('00000001.pack')) break; // the compaction won the race and finished
    }
    expect(hits, 'the daemon was killed while a new pack was partial').toBeGreaterThan(0);
    const daemon = await serve(store);
    const left = partials(store);
    daemon.child.kill('SIGTERM');
    await daemon.exited;
    expect(left, 'after the last restart').toEqual([]);

    const reopened = await Store.open(store, { autoSnapshot: false });
    try {
      expect(reopened.health.findings).toEqual([]);
      await expectExactly(reopened, 'M', acked, 'after the kills');
      const result = await reopened.compact();
      expect(result.packsRemoved).toContain(1);
      await expectExactly(reopened, 'M', acked, 'after a compaction');
      expect((await scrub(reopened)).findings.filter(isDamage)).toEqual([]);
    } finally {
      await reopened.close();
    }
    expect(existsSync(join(store, 'packs', '00000001.pack'))).toBe(false);
  }, 120_000);
});
