// A scrub run for a reader that went away (the CLI interrupted, its connection to the daemon gone)
// stops where it is: before, the daemon read every pack of the store on for nobody (hours of disk
// on a big store, beside the mail it serves).
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { PACKED } from '../helpers/packed.js';
import { PROCEDURES } from '../../src/daemon/procedures.js';
import { tmpDir } from '../helpers/tmp.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('a scrub whose reader stops early', () => {
  it('stops reading packs once its progress listing is closed', async () => {
    const store = await Store.open(tmpDir('scrub-stop'), { create: true, ...PACKED, packBytesMax: 64 * 1024 });
    try {
      await store.createMailbox('INBOX');
      for (let i = 0; i < 40; i++) await store.append('INBOX', Buffer.from(`Subject: ${i}\r\n\r\n${'x'.repeat(50_000)}\r\n`));
      let clock = 0; // how often the scrub's throttle looked at the time: once a batch of records it read (a pack each here)
      const now = () => { clock++; return performance.now(); };
      const events = PROCEDURES.scrubEvents(store, { maxRateBytesPerSecond: 200_000, now }); // ~10 s for these 2 MB
      const first = await events.next();
      expect(first.value).toMatchObject({ progress: { bytesDone: expect.any(Number) } });
      await events.return(undefined);
      // the batch it was in (its throttle's sleep) ends, and the run with it: the clock goes quiet
      // long before the ~40 packs a whole run reads at this rate
      for (let last = -1, waited = 0; clock !== last && waited < 5000; waited += 500) {
        last = clock;
        await sleep(500);
      }
      const quiet = clock;
      await sleep(500);
      expect(clock).toBe(quiet);
      expect(clock).toBeLessThan(20);
    } finally {
      await store.close();
    }
  });

  it('a scrub read to its end still reports a full cycle', async () => {
    const store = await Store.open(tmpDir('scrub-stop'), { create: true, ...PACKED });
    try {
      await store.createMailbox('INBOX');
      for (let i = 0; i < 5; i++) await store.append('INBOX', Buffer.from(`Subject: ${i}\r\n\r\n${'y'.repeat(50_000)}\r\n`));
      const events = [];
      for await (const event of PROCEDURES.scrubEvents(store, {})) events.push(event);
      expect(events.at(-1)?.report?.summary).toMatchObject({ cycleComplete: true, blobsVerified: 5, damage: 0 });
    } finally {
      await store.close();
    }
  });
});
