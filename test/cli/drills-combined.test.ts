// Disaster drills with two losses at once, run through the built CLI as an admin would after
// RECOVERY.md: each step's exit code, and that no acknowledged byte leaves the store's files.
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Store } from '../../src/index.js';
import { requireBuilt, run, tempDir } from './helpers.js';

beforeAll(requireBuilt);

const mailstore = (dir: string, ...args: string[]) => run(args, { store: dir });

/** Every file of a store directory with its bytes (index/ and lock/ aside: LevelDB's own). */
function filesOf(dir: string, sub: string): Map<string, Buffer> {
  return new Map(readdirSync(join(dir, sub)).map((name) => [name, readFileSync(join(dir, sub, name))]));
}

/**
 * The newest pack file and index/ lost: scrub reports the loss (exit 1) and cuts no acknowledged
 * batch as a crash's (before: the newest batch went to quarantine/ and its message was gone for
 * good); with the pack file put back scrub is clean and every acknowledged message reads back.
 */
async function losePackAndIndexThenPutBack(dir: string, acked: Map<string, Buffer>): Promise<void> {
  const newest = readdirSync(join(dir, 'packs')).filter((name) => name.endsWith('.pack')).sort().at(-1)!;
  const pack = readFileSync(join(dir, 'packs', newest));
  rmSync(join(dir, 'packs', newest));
  rmSync(join(dir, 'index'), { recursive: true });
  const lost = await mailstore(dir, 'scrub', '--quiet');
  expect(lost.code, lost.stdout.toString()).toBe(1);
  expect(readdirSync(join(dir, 'quarantine')).filter((name) => name.startsWith('journal-batch'))).toEqual([]);
  writeFileSync(join(dir, 'packs', newest), pack);
  const back = await mailstore(dir, 'scrub', '--quiet');
  expect(back.code, back.stdout.toString()).toBe(0);
  const reopened = await Store.open(dir);
  try {
    for (const [ref, bytes] of acked) expect((await reopened.fetch('INBOX', Number(ref.split(' ')[1]))).equals(bytes), ref).toBe(true);
  } finally {
    await reopened.close();
  }
}

describe('disaster drills: two losses at once', () => {
  it('index/ lost and both snapshots damaged over a retired journal: no command rewrites, snapshots or compacts the rest away, and the store is never called clean', async () => {
    const dir = join(tempDir(), 'store');
    const acked: Buffer[] = [];
    const s = await Store.open(dir, { create: true, journalSegmentBytesMax: 8192, packBytesMax: 64 * 1024 });
    try {
      for (const box of ['user/alice/INBOX', 'user/bob/INBOX']) await s.createMailbox(box, { owner: box.split('/')[1] });
      for (let i = 0; i < 45; i++) {
        // small ones inline in their journal record, larger ones in packs
        const bytes = Buffer.from(`Subject: drill ${i}\r\n\r\n${`line ${i} `.repeat(20 + (i * 1733) % 5000)}\r\n`);
        await s.append(i % 2 ? 'user/alice/INBOX' : 'user/bob/INBOX', bytes);
        acked.push(bytes);
        if (i % 15 === 14) await s.snapshot();
      }
    } finally {
      await s.close();
    }
    expect(readdirSync(join(dir, 'journal'))).not.toContain('0000000000000001.jnl'); // retired below the older snapshot
    for (const name of readdirSync(join(dir, 'snapshots'))) {
      const path = join(dir, 'snapshots', name);
      const bytes = readFileSync(path);
      bytes.fill(0x58, 200, 208);
      writeFileSync(path, bytes);
    }
    rmSync(join(dir, 'index'), { recursive: true });
    const journal = filesOf(dir, 'journal');
    const packs = filesOf(dir, 'packs');

    // the first open (here scrub's) rebuilds the index from what is left of the journal
    expect((await mailstore(dir, 'scrub')).code).toBe(1);
    // That index knows nothing the journal lacks: it is no source to write a new journal from
    // (before: `source: index`, the journal replaced by one of an empty store, exit 0).
    const reconstructed = await mailstore(dir, 'reconstruct');
    expect(reconstructed.stdout.toString()).toMatch(/^source: journal/);
    // done, but not whole: a script must not read it as recovered (it exited 0 before)
    expect(reconstructed.code).toBe(1);
    expect(reconstructed.stdout.toString()).toMatch(/the store is still degraded: the journal is damaged or incomplete .*Put the missing segments back/);
    // a snapshot of it would cover the missing records and let the rest of the journal retire
    const snapshot = await mailstore(dir, 'snapshot');
    expect(snapshot.code, snapshot.stderr).toBe(3);
    expect(snapshot.stderr).toMatch(/REFUSED: no snapshot taken: the index was rebuilt from a damaged or incomplete journal/);
    // compaction would take every pack record the index does not know for dead and delete the packs
    const compact = await mailstore(dir, 'compact', '--grace', '0s');
    expect(compact.code, compact.stderr).toBe(3);
    expect(compact.stderr).toMatch(/REFUSED: the store opened degraded/);
    expect((await mailstore(dir, 'scrub', '--repair')).code).toBe(1);
    expect((await mailstore(dir, 'scrub')).code).toBe(1);

    const journalAfter = filesOf(dir, 'journal');
    for (const [name, bytes] of journal) expect(journalAfter.get(name)?.equals(bytes), `journal/${name}`).toBe(true);
    const packsAfter = filesOf(dir, 'packs');
    for (const [name, bytes] of packs) expect(packsAfter.get(name)?.subarray(0, bytes.length).equals(bytes), `packs/${name}`).toBe(true);
    // every acknowledged body is still in the store's files (a pack record or an inline journal record)
    const everything = Buffer.concat([...journalAfter.values(), ...packsAfter.values()]);
    for (const [i, bytes] of acked.entries()) expect(everything.includes(bytes), `message ${i}`).toBe(true);

    // the way out the refusals name: the packs' messages into lost+found, the rest accepted as lost
    const fromPacks = await mailstore(dir, 'reconstruct', '--from-packs');
    expect(fromPacks.code, fromPacks.stderr).toBe(1); // the packs' messages in lost+found; the journal's gap still there
    expect(fromPacks.stdout.toString()).toMatch(/message\(s\) nothing referred to were filed in/);
    const accepted = await mailstore(dir, 'reconstruct', '--from-index');
    expect(accepted.code, accepted.stderr).toBe(0);
    expect((await mailstore(dir, 'snapshot')).code).toBe(0);
  }, 60_000);

  it('index/ lost and the newest pack lost, made by the last retirement (inline bodies moved into it, their records retired): the move is kept, and with the pack put back every message reads back', async () => {
    const dir = join(tempDir(), 'store');
    const acked = new Map<string, Buffer>(); // "mailbox uid" -> bytes
    const s = await Store.open(dir, { create: true, journalSegmentBytesMax: 8192, packBytesMax: 64 * 1024 });
    try {
      await s.createMailbox('INBOX');
      for (let i = 1; i <= 60; i++) {
        const bytes = Buffer.from(`Subject: inline ${i}\r\n\r\n${`body ${i} `.repeat(20 + (i * 997) % 1500)}\r\n`); // inline: in its journal record
        acked.set(`INBOX ${(await s.append('INBOX', bytes)).uid}`, bytes);
        if (i % 20 === 0) await s.snapshot(); // the last one's retirement moves bodies into packs, then retires their records
      }
    } finally {
      await s.close();
    }
    await losePackAndIndexThenPutBack(dir, acked);
  }, 60_000);

  it('index/ lost and the newest pack lost, mail appended after the last snapshot: scrub names the missing messages (exit 1); with the pack file put back every one reads back (exit 0), none cut as a crash\'s', async () => {
    const dir = join(tempDir(), 'store');
    const acked = new Map<string, Buffer>(); // "mailbox uid" -> bytes
    const s = await Store.open(dir, { create: true, journalSegmentBytesMax: 8192, packBytesMax: 64 * 1024, inlineBodyBytesMax: 0 });
    try {
      await s.createMailbox('INBOX');
      for (let i = 0; i < 42; i++) {
        const bytes = Buffer.from(`Subject: pack ${i}\r\n\r\n${`body ${i} `.repeat(100 + (i * 997) % 900)}\r\n`);
        acked.set(`INBOX ${(await s.append('INBOX', bytes)).uid}`, bytes);
        if (i % 20 === 19) await s.snapshot(); // the last two appends come after the last snapshot
      }
    } finally {
      await s.close();
    }
    await losePackAndIndexThenPutBack(dir, acked);
  }, 60_000);
});
