// An import batch is cut at importLimits.batchMessagesMax messages or batchBytesMax bytes,
// whichever comes first. The message cap is kept low enough that batches of small messages
// (SpamAssassin, ~5 KB) do not hold thousands of live messages and ops (session 18: 0.82x the
// import time, 0.92x the CPU of 500), and high enough that messages above batchBytesMax / cap
// fill a batch by bytes and are cut exactly as before.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { importMail } from '../../src/import/importer.js';
import { importLimits } from '../../src/limits.js';
import { tmpDir } from '../helpers/tmp.js';
import type { Store } from '../../src/store/store.js';
import { stored, withStore } from './helpers.js';

const mboxOf = (texts: string[]) => texts.map((t) => `From a@example.org Mon Jan  1 00:00:00 2024\n${t}\n`).join('');

async function batchSizes(name: string, texts: string[]): Promise<number[]> {
  const mbox = join(tmpDir('batch-size'), `${name}.mbox`);
  writeFileSync(mbox, mboxOf(texts));
  const sizes: number[] = [];
  await withStore(async (store) => {
    const summary = await importMail(store, mbox, { mailbox: 'M', format: 'mbox', onBatch: (batch) => { sizes.push(batch.messages); } });
    expect(summary.imported).toBe(texts.length);
    expect(summary.batches).toBe(sizes.length);
    expect(await stored(store, 'M')).toEqual(texts);
  });
  return sizes;
}

describe('import batch size', () => {
  it('small messages: batches of the message cap (250), every message stored exactly', async () => {
    expect(importLimits.batchMessagesMax).toBe(250);
    const cap = importLimits.batchMessagesMax;
    const texts = Array.from({ length: 2 * cap + 17 }, (_, i) => `Message-ID: <s${i}@example.org>\nSubject: ${i}\n\nsmall ${i}\n`);
    expect(await batchSizes('small', texts)).toEqual([cap, cap, 17]);
  });

  it('messages above batchBytesMax / cap: the byte limit cuts the batch before the message cap does', async () => {
    const cap = importLimits.batchMessagesMax;
    const size = Math.ceil(importLimits.batchBytesMax / cap) + 64; // ~16.5 KiB with 4 MiB and 250
    const texts = Array.from({ length: cap + 10 }, (_, i) => `Message-ID: <l${i}@example.org>\nSubject: ${i}\n\n${String(i % 10).repeat(size)}\n`);
    const sizes = await batchSizes('large', texts);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(texts.length);
    expect(sizes.length).toBe(2);
    expect(sizes[0]).toBeLessThan(cap); // cut by bytes: a batch never exceeds batchBytesMax
    expect(sizes[0]! * (size + 40)).toBeLessThanOrEqual(importLimits.batchBytesMax);
  });
});

describe('import into a mailbox renamed away meanwhile', () => {
  it('stops (NOT_FOUND) when the mailbox is renamed away and made again under its name: the rest is not added to the new one, whose import then starts over', async () => {
    const cap = importLimits.batchMessagesMax;
    const texts = Array.from({ length: 2 * cap + 17 }, (_, i) => `Message-ID: <r${i}@example.org>\nSubject: ${i}\n\nrenamed ${i}\n`);
    const mbox = join(tmpDir('batch-size'), 'renamed.mbox');
    writeFileSync(mbox, mboxOf(texts));
    await withStore(async (store) => {
      // an admin (or a mail client) renames the mailbox away and makes one of the name before the
      // second batch: before, the rest went into the new one under the old one's cursor, and the next
      // run, finding that cursor of another mailbox, imported everything there again
      let batches = 0;
      const renaming = new Proxy(store, {
        get: (target, key) => {
          if (key === 'appendBatch') {
            return async (...args: Parameters<Store['appendBatch']>) => {
              if (++batches === 2) {
                await target.renameMailbox('M', 'M-away');
                await target.createMailbox('M');
              }
              return target.appendBatch(...args);
            };
          }
          const value = Reflect.get(target, key, target);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
      const stopped = await importMail(renaming, mbox, { mailbox: 'M', format: 'mbox' }).catch((error: unknown) => error);
      expect(stopped).toMatchObject({ code: 'NOT_FOUND' });
      expect((await store.status('M')).messages).toBe(0);
      expect(await stored(store, 'M-away')).toEqual(texts.slice(0, cap));
      const again = await importMail(store, mbox, { mailbox: 'M', format: 'mbox' });
      expect(again.imported).toBe(texts.length);
      expect(await stored(store, 'M')).toEqual(texts);
    });
  });
});
