// scrub --repair of inline bodies (docs/FORMAT.md, "Inline bodies"): a small delivery's only copy
// is inside its journal record, so damage to that record is damage to the mail. A copy of the
// store holds the record in its own journal/: repair takes the body from there (verified by its
// hash), puts it into a pack, and, the index being intact, replaces the damaged journal with one
// written from the index. Without a source nothing is rewritten: the damaged record stays where
// scrub can report it. (Found by the scrub acceptance check, whose damage now lands in the journal.)
import { describe, expect, it } from 'vitest';
import { cpSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { scrub } from '../../src/scrub/scrub.js';
import { repair } from '../../src/scrub/repair.js';
import { parseSegment } from '../../src/journal/segment-reader.js';
import { RECORD_MAGIC } from '../../src/journal/journal-format.js';
import { limits } from '../../src/limits.js';
import { tmpDir } from '../helpers/tmp.js';

const DAMAGED = [3, 8, 12];

function message(i: number): Buffer {
  return Buffer.from(`Message-ID: <inline-${i}@example.org>\r\nSubject: ${i}\r\n\r\n${`line ${i} `.repeat(300)}\r\n`);
}

/** Zeros 8 bytes `from` bytes after the start of message i's text in every segment of `journal` that holds it. */
function zeroInJournal(journal: string, messages: number[], from = 200): void {
  for (const name of readdirSync(journal).filter((n) => n.endsWith('.jnl'))) {
    const path = join(journal, name);
    const bytes = readFileSync(path);
    for (const i of messages) {
      const at = bytes.indexOf(`<inline-${i}@`);
      if (at >= 0) bytes.fill(0, at + from, at + from + 8);
    }
    writeFileSync(path, bytes);
  }
}

/** Zeros the first 8 bytes (magic and length) of the header of the record holding message i. */
function zeroRecordHeader(journal: string, i: number): void {
  for (const name of readdirSync(journal).filter((n) => n.endsWith('.jnl'))) {
    const path = join(journal, name);
    const bytes = readFileSync(path);
    const at = bytes.indexOf(`<inline-${i}@`);
    if (at < 0) continue;
    const start = bytes.lastIndexOf(RECORD_MAGIC, at);
    expect(start).toBeGreaterThan(0);
    bytes.fill(0, start, start + 8);
    writeFileSync(path, bytes);
  }
}

/** A store of 15 inline deliveries, its copy, then 8 zero bytes inside the bodies of DAMAGED in the store's journal. */
async function damagedInlineStore(): Promise<{ dir: string; copy: string }> {
  const dir = tmpDir('inline-repair');
  const store = await Store.open(dir, { create: true });
  await store.createMailbox('INBOX');
  for (let i = 1; i <= 15; i++) await store.append('INBOX', message(i));
  await store.close();
  const copy = tmpDir('inline-copy');
  cpSync(dir, copy, { recursive: true });
  zeroInJournal(join(dir, 'journal'), DAMAGED);
  return { dir, copy };
}

describe('repairing inline bodies from a copy of the store', () => {
  it('the bodies come back from the copy\'s journal, the damaged journal is replaced from the index, scrub is clean and every message exact', async () => {
    const { dir, copy } = await damagedInlineStore();
    const store = await Store.open(dir);
    try {
      const before = await scrub(store);
      const missing = before.findings.filter((f) => f.kind === 'blob-missing');
      expect(missing.length).toBe(DAMAGED.length);
      expect(before.findings.some((f) => f.kind === 'journal-damage')).toBe(true);
      for (const uid of DAMAGED) await expect(store.fetch('INBOX', uid)).rejects.toMatchObject({ code: 'CORRUPT' });
      const result = await repair(store, before, { sources: [copy] });
      expect(result.blobsRestored).toBe(DAMAGED.length);
      expect(result.journalRewritten).toBe(true);
      expect(result.unrepaired).toEqual([]);
      for (let i = 1; i <= 15; i++) expect((await store.fetch('INBOX', i)).equals(message(i)), `uid ${i}`).toBe(true);
      expect(readdirSync(join(dir, 'quarantine')).length).toBeGreaterThan(0); // the old journal, kept
    } finally {
      await store.close();
    }
    const reopened = await Store.open(dir);
    try {
      expect((await scrub(reopened)).summary.damage).toBe(0);
      for (let i = 1; i <= 15; i++) expect((await reopened.fetch('INBOX', i)).equals(message(i)), `uid ${i} after a reopen`).toBe(true);
    } finally {
      await reopened.close();
    }
  });

  it('without a source the journal is not rewritten: the damaged bodies stay reported (CORRUPT to fetch), the others exact', async () => {
    const { dir } = await damagedInlineStore();
    const store = await Store.open(dir);
    try {
      const result = await repair(store, await scrub(store), { sources: [] });
      expect(result.blobsRestored).toBe(0);
      expect(result.journalRewritten).toBe(false);
      expect(result.unrepaired.filter((f) => f.kind === 'blob-missing').length).toBe(DAMAGED.length);
      for (let i = 1; i <= 15; i++) {
        if (DAMAGED.includes(i)) await expect(store.fetch('INBOX', i)).rejects.toMatchObject({ code: 'CORRUPT' });
        else expect((await store.fetch('INBOX', i)).equals(message(i))).toBe(true);
      }
    } finally {
      await store.close();
    }
  });

  it('a copy whose own journal is damaged: its damaged records are skipped and the wanted bodies in the valid records after them used', async () => {
    const { dir, copy } = await damagedInlineStore();
    // the copy loses the records just before two wanted ones (2 before 3, 11 before 12): body bytes, and a record header
    zeroInJournal(join(copy, 'journal'), [2]);
    zeroRecordHeader(join(copy, 'journal'), 11);
    const segments = readdirSync(join(copy, 'journal')).filter((n) => n.endsWith('.jnl')).map((n) => readFileSync(join(copy, 'journal', n)));
    const items = segments.flatMap((bytes) => [...parseSegment(bytes, limits.journalRecordBytesMax)].map((item) => ({ item, bytes })));
    const damaged = items.filter(({ item }) => item.kind === 'damage');
    expect(damaged.length, 'the copy has two damaged ranges').toBe(2);
    const holds = (i: number) => items.some(({ item, bytes }) => item.kind === 'record' && bytes.subarray(item.offset, item.end).includes(`<inline-${i}@`));
    expect([2, 11].map(holds), 'records 2 and 11 unreadable in the copy').toEqual([false, false]);
    expect(DAMAGED.map(holds), 'the wanted bodies are in valid records of the copy').toEqual([true, true, true]);
    const copyBefore = segments.map((b) => Buffer.from(b));
    const store = await Store.open(dir);
    try {
      const result = await repair(store, await scrub(store), { sources: [copy] });
      expect(result.blobsRestored).toBe(DAMAGED.length);
      expect(result.journalRewritten).toBe(true);
      expect(result.unrepaired).toEqual([]);
      for (let i = 1; i <= 15; i++) expect((await store.fetch('INBOX', i)).equals(message(i)), `uid ${i}`).toBe(true);
    } finally {
      await store.close();
    }
    const copyAfter = readdirSync(join(copy, 'journal')).filter((n) => n.endsWith('.jnl')).map((n) => readFileSync(join(copy, 'journal', n)));
    expect(copyAfter.every((b, i) => b.equals(copyBefore[i])), 'the source is only read').toBe(true);
  });
});
