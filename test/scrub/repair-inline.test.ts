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
import { tmpDir } from '../helpers/tmp.js';

const DAMAGED = [3, 8, 12];

function message(i: number): Buffer {
  return Buffer.from(`Message-ID: <inline-${i}@example.org>\r\nSubject: ${i}\r\n\r\n${`line ${i} `.repeat(300)}\r\n`);
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
  const journal = join(dir, 'journal');
  for (const name of readdirSync(journal).filter((n) => n.endsWith('.jnl'))) {
    const path = join(journal, name);
    const bytes = readFileSync(path);
    for (const i of DAMAGED) {
      const at = bytes.indexOf(`<inline-${i}@`);
      if (at >= 0) bytes.fill(0, at + 200, at + 208);
    }
    writeFileSync(path, bytes);
  }
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
});
