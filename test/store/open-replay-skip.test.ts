// Store.open skips the replay's second read of the newest journal segment when resolveTail already
// read it whole and clean and the index has applied its last record (issue 16: a CLI command's start
// read that segment twice, up to 16 MB each). Damage in the middle, or records the index lacks,
// still go through the replay as before.
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES } from '../../src/journal/journal-format.js';
import { Journal } from '../../src/journal/journal.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';

afterEach(() => { vi.restoreAllMocks(); });

async function uids(store: Store): Promise<number[]> {
  const found: number[] = [];
  for await (const message of store.messages('INBOX')) found.push(message.uid);
  return found;
}

async function storeWithThree(): Promise<string> {
  const root = join(tmpDir(), 'store');
  const store = await Store.init(root);
  await store.createMailbox('INBOX');
  for (const body of ['one', 'two', 'three']) await store.append('INBOX', Buffer.from(`Subject: ${body}\r\n\r\n${body}\r\n`));
  await store.close();
  return root;
}

function newestSegment(root: string): string {
  const names = readdirSync(join(root, 'journal')).filter((name) => name.endsWith('.jnl')).sort();
  return join(root, 'journal', names[names.length - 1]);
}

/** Opens `root` (three messages): no journal.read, nothing degraded, every message there, appends go on. */
async function expectOpenedWithoutReplayRead(root: string, rebuiltFrom?: RegExp): Promise<void> {
  const read = vi.spyOn(Journal.prototype, 'read');
  const store = await Store.open(root);
  try {
    if (rebuiltFrom) expect(store.health.rebuiltFrom).toMatch(rebuiltFrom);
    expect(read).not.toHaveBeenCalled();
    expect(store.health.degraded).toBe(false);
    expect(await uids(store)).toEqual([1, 2, 3]);
    expect((await store.fetch('INBOX', 2)).toString()).toBe('Subject: two\r\n\r\ntwo\r\n');
    expect((await store.append('INBOX', Buffer.from('Subject: four\r\n\r\nfour\r\n'))).uid).toBe(4);
  } finally {
    await store.close();
  }
  const again = await Store.open(root);
  try {
    expect(await uids(again)).toEqual([1, 2, 3, 4]);
  } finally {
    await again.close();
  }
}

describe('open after a clean close', () => {
  it('reads the newest segment once (no replay read); every message is there and appends go on', async () => {
    const root = await storeWithThree();
    await expectOpenedWithoutReplayRead(root);
  });

  it('damage in the middle of the newest segment still goes through the replay: reported, records after it kept', async () => {
    const root = await storeWithThree();
    const path = newestSegment(root);
    const bytes = readFileSync(path);
    bytes[SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES + 2] ^= 0xff; // inside the first record's payload
    writeFileSync(path, bytes);
    const read = vi.spyOn(Journal.prototype, 'read');
    const store = await Store.open(root);
    try {
      expect(read).toHaveBeenCalled();
      expect(store.health.degraded).toBe(true);
      expect(store.health.journalDamage.map((d) => d.where)).toEqual(['middle']);
      expect(await uids(store)).toEqual([1, 2, 3]); // the index still has them
    } finally {
      await store.close();
    }
  });
});

describe('a rebuild from a snapshot at the end of the journal', () => {
  it('reads the newest segment once (no replay read); every message is there and appends go on', async () => {
    const root = await storeWithThree();
    for (let pass = 0; pass < 2; pass++) { // the first close after a snapshot moves the inline bodies to a pack (one record)
      const taker = await Store.open(root);
      await taker.snapshot();
      await taker.close();
    }
    rmSync(join(root, 'index'), { recursive: true });
    await expectOpenedWithoutReplayRead(root, /^snapshot .* and 0 journal records after it$/);
  });

  it('with records after the snapshot the replay reads them', async () => {
    const root = await storeWithThree();
    const taker = await Store.open(root);
    await taker.snapshot();
    await taker.append('INBOX', Buffer.from('Subject: four\r\n\r\nfour\r\n'));
    await taker.close();
    rmSync(join(root, 'index'), { recursive: true });
    const read = vi.spyOn(Journal.prototype, 'read');
    const store = await Store.open(root);
    try {
      expect(store.health.rebuiltFrom).toMatch(/^snapshot .* and [12] journal records after it$/);
      expect(read).toHaveBeenCalled();
      expect(await uids(store)).toEqual([1, 2, 3, 4]);
    } finally {
      await store.close();
    }
  });
});
