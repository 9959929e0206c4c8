// An import whose batch fails (disk full) stops with the error code; what went in before is whole,
// the cursor names exactly it, and the same import run again adds the rest, each message once.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { importMail } from '../../src/import/importer.js';
import { MailstoreError } from '../../src/errors.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { tmpDir } from '../helpers/tmp.js';
import { importLimits } from '../../src/limits.js';

/** Bodies of an mbox written to a fresh file (`From_` separated), and its path. */
function writeMbox(name: string, bodies: string[]): string {
  const mbox = join(tmpDir('src'), name);
  writeFileSync(mbox, bodies.map((body) => `From MAILER-DAEMON Mon Jan  1 00:00:00 2024\n${body}\n`).join(''));
  return mbox;
}

async function storedBodies(store: Store): Promise<string[]> {
  const seen: string[] = [];
  for await (const m of store.messages('INBOX')) seen.push((await store.fetch('INBOX', m.uid)).toString());
  return seen;
}

/**
 * The error an import stopped with tells how many messages of the run are in and that the same
 * import goes on from there: the disk-full error alone says "nothing was written" (of the failing
 * batch), which read as "the import did nothing" invites --restart, which adds them all again.
 */
function expectSaysWhatWentIn(error: MailstoreError, kept: number): void {
  expect(error.message).toContain(`${kept} messages this run imported are in the store`);
  expect(error.message).toContain('run the same import again');
  expect(error.cause).toBeInstanceOf(MailstoreError); // the error as the store raised it
}

/**
 * Imports `bodies` in batches of 10 while the `failingWrite`-th journal write hits a full disk:
 * the import stops with NO_SPACE having kept whole batches only, each message exact; the same
 * import run again adds the rest, each message once. Returns how many the first run kept.
 */
async function noSpaceThenResume(bodies: string[], failingWrite: number): Promise<number> {
  const dir = tmpDir();
  const mbox = writeMbox('in.mbox', bodies);
  const fs = new FaultFileSystem();
  let store = await Store.open(dir, { create: true, fs });
  let journalWrites = 0;
  fs.injectAt((op) => op.kind === 'write' && op.path.includes('journal') && ++journalWrites === failingWrite, 'ENOSPC');
  const error = await importMail(store, mbox, { mailbox: 'INBOX', batchMessagesMax: 10 }).catch((e) => e);
  expect(error).toBeInstanceOf(MailstoreError);
  expect((error as MailstoreError).code).toBe('NO_SPACE');
  const kept = (await store.status('INBOX')).messages;
  expect(kept % 10).toBe(0); // whole batches only
  expect(kept).toBeLessThan(bodies.length);
  expectSaysWhatWentIn(error as MailstoreError, kept);
  expect(await storedBodies(store)).toEqual(bodies.slice(0, kept));
  await store.close();
  fs.clear();
  store = await Store.open(dir, { fs });
  const summary = await importMail(store, mbox, { mailbox: 'INBOX', batchMessagesMax: 10 });
  expect(summary.alreadyImported).toBe(kept);
  expect(await storedBodies(store)).toEqual(bodies);
  await store.close();
  return kept;
}

describe('import under a failing disk', () => {
  it('NO_SPACE in the middle: earlier batches kept whole, a re-run completes it with no duplicates', async () => {
    const bodies = Array.from({ length: 60 }, (_, i) => `Message-ID: <f${i}@example.org>\nSubject: ${i}\n\n${'x'.repeat(200 + i)}\n`);
    // the third batch's journal write hits a full disk (the two before went in)
    expect(await noSpaceThenResume(bodies, 4)).toBeGreaterThanOrEqual(10);
  });

  it('NO_SPACE with the mbox read through its ring of reused chunks: nothing stored is another message\'s bytes', async () => {
    // Chunks of 4 KiB and ~1 KiB messages: ~70 chunks, so the ring reuses chunks once batches
    // commit. A batch that fails never raises doneBelow, so the chunks its messages view (and
    // those of every batch read after it) must not be read into again while the failure unwinds.
    const tunable = importLimits as { mboxChunkBytes: number };
    const saved = tunable.mboxChunkBytes;
    tunable.mboxChunkBytes = 4096;
    try {
      const bodies = Array.from({ length: 240 }, (_, i) =>
        `Message-ID: <r${i}@example.org>\nSubject: ring ${i}\n\n${String.fromCharCode(97 + (i % 26)).repeat(900 + (i * 37) % 400)}\n`);
      // the 12th journal write fails, after the ring has reused chunks
      expect(await noSpaceThenResume(bodies, 12)).toBeGreaterThanOrEqual(50);
    } finally {
      tunable.mboxChunkBytes = saved;
    }
  });

  it('EIO reading the mbox ahead (the next chunk, read while the messages of this one go in): earlier batches kept, a re-run completes it', async () => {
    const tunable = importLimits as { mboxChunkBytes: number };
    const saved = tunable.mboxChunkBytes;
    tunable.mboxChunkBytes = 4096;
    try {
      const bodies = Array.from({ length: 120 }, (_, i) => `Message-ID: <e${i}@example.org>\nSubject: eio ${i}\n\n${'z'.repeat(700 + (i * 53) % 300)}\n`);
      const dir = tmpDir();
      const mbox = writeMbox('eio.mbox', bodies);
      const fs = new FaultFileSystem();
      let store = await Store.open(dir, { create: true });
      fs.injectAt((op) => op.kind === 'read' && op.path === mbox && (op.position ?? 0) >= 40_000, 'EIO');
      const error = await importMail(store, mbox, { mailbox: 'INBOX', fs, batchMessagesMax: 10 }).catch((e) => e);
      expect(error).toBeInstanceOf(MailstoreError);
      expect((error as MailstoreError).code).toBe('IO');
      const kept = (await store.status('INBOX')).messages;
      expect(kept).toBeGreaterThanOrEqual(10);
      expect(kept).toBeLessThan(bodies.length);
      expectSaysWhatWentIn(error as MailstoreError, kept);
      expect(await storedBodies(store)).toEqual(bodies.slice(0, kept));
      await store.close();
      fs.clear();
      store = await Store.open(dir);
      const summary = await importMail(store, mbox, { mailbox: 'INBOX', fs, batchMessagesMax: 10 });
      expect(summary.alreadyImported).toBe(kept);
      expect(await storedBodies(store)).toEqual(bodies);
      await store.close();
    } finally {
      tunable.mboxChunkBytes = saved;
    }
  });
});
