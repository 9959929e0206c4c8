// The pack pass of scrub must return to the event loop as it goes: the native hasher's result
// buffers are freed by finalizers that run there (without it, peak RSS grew with the number of
// blobs), and a daemon's other work must not wait for a whole pass. No timing: it counts turns.
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { scrub } from '../../src/scrub/scrub.js';
import { tmpDir } from '../helpers/tmp.js';

const MESSAGES = 3500;

function message(i: number): Buffer {
  return Buffer.from(`Message-ID: <turn${i}@example.org>\r\nSubject: ${i}\r\n\r\nbody ${i}\r\n`);
}

describe('scrub and the event loop', () => {
  it('the pack pass lets setImmediate callbacks run while it scans, and still verifies every blob', async () => {
    const dir = tmpDir('scrub-turns');
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    for (let first = 0; first < MESSAGES; first += 500) {
      await store.appendBatch('INBOX', Array.from({ length: 500 }, (_, k) => ({ bytes: message(first + k) })));
    }

    let turns = 0;
    let ticking = true;
    const tick = () => { turns++; if (ticking) setImmediate(tick); };
    setImmediate(tick);
    const turnsAtPackProgress: number[] = [];
    const report = await scrub(store, {
      onProgress: (p) => { if (p.phase === 'packs') turnsAtPackProgress.push(turns); },
    });
    ticking = false;
    await store.close();

    expect(report.summary.blobsVerified).toBe(MESSAGES);
    expect(report.summary.damage).toBe(0);
    expect(turnsAtPackProgress.length).toBe(MESSAGES);
    // at least one event loop turn after each 1,000 records, inside the pass
    const during = turnsAtPackProgress[turnsAtPackProgress.length - 1]! - turnsAtPackProgress[0]!;
    expect(during).toBeGreaterThanOrEqual(Math.floor(MESSAGES / 1000) - 1);
  });
});
