// The journal's preallocation filler comes from one shared buffer (journal-format.ts fillerToWrite):
// every view of it must be exactly the filler for its offset, and writing it must not change it.
import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { FILLER_PATTERN, fillerBytes, fillerToWrite } from '../../src/journal/journal-format.js';
import { limits } from '../../src/limits.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';

describe('fillerToWrite', () => {
  it('is the filler of its offset at every phase, up to the preallocation size and past it', () => {
    for (const offset of [0, 1, 15, 16, 17, 4096 + 7, 12_345_679]) {
      for (const length of [1, 16, 1000, limits.journalPreallocateBytes]) {
        expect(fillerToWrite(offset, length).equals(fillerBytes(offset, length)), `offset ${offset}, length ${length}`).toBe(true);
      }
    }
    const longer = limits.journalPreallocateBytes + 100;
    expect(fillerToWrite(3, longer).equals(fillerBytes(3, longer))).toBe(true);
    expect(fillerToWrite(3, longer).length).toBe(longer);
  });

  it('a store writing through several preallocations leaves the shared filler unchanged, and its segment reads as records then filler', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    const body = Buffer.concat([Buffer.from('Subject: s\r\n\r\n'), Buffer.alloc(12_000, 'b')]);
    const count = Math.ceil((2.5 * limits.journalPreallocateBytes) / body.length);
    for (let i = 0; i < count; i++) await store.append('INBOX', body);
    await store.close();
    expect(fillerToWrite(5, limits.journalPreallocateBytes).equals(fillerBytes(5, limits.journalPreallocateBytes))).toBe(true);
    const segments = readdirSync(join(dir, 'journal')).filter((name) => name.endsWith('.jnl'));
    const segment = readFileSync(join(dir, 'journal', segments[segments.length - 1]));
    const tail = segment.subarray(segment.length - FILLER_PATTERN.length * 4);
    expect(tail.equals(fillerBytes(segment.length - tail.length, tail.length))).toBe(true);
    const reopened = await Store.open(dir);
    expect((await reopened.status('INBOX')).messages).toBe(count);
    expect((await reopened.fetch('INBOX', count)).equals(body)).toBe(true);
    await reopened.close();
  });
});
