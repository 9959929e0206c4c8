// A damaged consumer cursor or journal archive setting refuses every journal retirement (CORRUPT)
// while reads and deliveries go on, so the journal grows with history. Scrub called such a store
// clean (an outside tester's finding, wt47b): now each is a store-file-damage finding, exit 1.
import { describe, expect, it } from 'vitest';
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Store } from '../../src/store/store.js';
import { scrub } from '../../src/scrub/scrub.js';
import { repair } from '../../src/scrub/repair.js';
import { tmpDir } from '../helpers/tmp.js';

const CLI = new URL('../../dist/src/cli/main.js', import.meta.url).pathname;
const cli = (args: string[], dir: string) => spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, MAILSTORE_DIR: dir }, encoding: 'utf8' });

/** A store with a snapshot, a journal archive and a replica's cursor. */
async function storeWithCursors(): Promise<string> {
  const dir = tmpDir();
  const archive = tmpDir('archive');
  mkdirSync(archive, { recursive: true, mode: 0o700 });
  const store = await Store.open(dir, { create: true });
  try {
    await store.createMailbox('INBOX');
    for (let i = 0; i < 3; i++) await store.append('INBOX', Buffer.from(`Subject: ${i}\r\n\r\nbody ${i}\r\n`));
    await store.setJournalArchive(archive);
    await store.changes.register('replica-0123456789abcdef');
    await store.changes.register('compact');
    await store.snapshot();
  } finally {
    await store.close();
  }
  return dir;
}

function flipByte(path: string, at: number): void {
  const bytes = readFileSync(path);
  bytes[at] ^= 0x20;
  writeFileSync(path, bytes);
}

describe('scrub reports damaged store files that an open does not read', () => {
  it('a flipped byte in a consumer cursor or JOURNAL-ARCHIVE: store-file-damage, exit 1; the undamaged store is clean', async () => {
    const dir = await storeWithCursors();
    const clean = await Store.open(dir);
    try {
      expect((await scrub(clean)).summary.damage).toBe(0);
    } finally {
      await clean.close();
    }
    for (const file of ['consumers/replica-0123456789abcdef', 'consumers/snapshot', 'JOURNAL-ARCHIVE']) {
      const copy = tmpDir('damaged');
      cpSync(dir, copy, { recursive: true });
      flipByte(join(copy, file), 3);
      const store = await Store.open(copy);
      try {
        const report = await scrub(store);
        expect(report.findings.filter((f) => f.kind === 'store-file-damage').map((f) => f.kind === 'store-file-damage' && f.file)).toEqual([file]);
        expect(report.summary.damage, file).toBe(1);
      } finally {
        await store.close();
      }
      const run = cli(['scrub', '--quiet'], copy);
      expect(run.status, run.stderr).toBe(1);
      expect(run.stdout).toContain(`store-file-damage  ${file}`);
    }
  });

  // wt49g's finding: stats and consumers read every cursor through ChangeFeed.consumers(), which
  // throws, so one damaged cursor made the admin's view of the store fail CORRUPT (exit 6): the
  // commands that should show it showed nothing. Retirement still refuses (it needs every cursor).
  it('stats and consumers on a store with a damaged consumer cursor list it as DAMAGED beside the others (were CORRUPT, exit 6); what retirement reads still refuses', async () => {
    const dir = await storeWithCursors();
    flipByte(join(dir, 'consumers/replica-0123456789abcdef'), 3);
    const stats = cli(['stats', '--json'], dir);
    expect(stats.status, stats.stderr).toBe(0);
    const parsed = JSON.parse(stats.stdout);
    expect(parsed.consumers.map((c: { name: string }) => c.name)).toEqual(['compact', 'snapshot']);
    expect(parsed.consumersDamaged).toEqual([expect.objectContaining({ name: 'replica-0123456789abcdef', path: join(dir, 'consumers/replica-0123456789abcdef') })]);
    const text = cli(['stats'], dir);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/consumer replica-0123456789abcdef +DAMAGED: .*consumers --remove replica-0123456789abcdef/);
    const consumers = cli(['consumers'], dir);
    expect(consumers.status, consumers.stderr).toBe(1);
    expect(consumers.stdout).toMatch(/^compact +at seq/m);
    expect(consumers.stdout).toMatch(/^replica-0123456789abcdef +DAMAGED: /m);
    const json = cli(['consumers', '--json'], dir);
    expect(json.status).toBe(1);
    expect(JSON.parse(json.stdout).damaged.map((d: { name: string }) => d.name)).toEqual(['replica-0123456789abcdef']);
    const store = await Store.open(dir);
    try {
      await expect(store.changes.consumers()).rejects.toMatchObject({ code: 'CORRUPT', message: expect.stringMatching(/replica-0123456789abcdef/) });
    } finally {
      await store.close();
    }
  });

  it('scrub --repair on a store with a damaged consumer cursor repairs what it can and reports the cursor (was CORRUPT, exit 6, before anything: its gate read every cursor)', async () => {
    const dir = await storeWithCursors();
    flipByte(join(dir, 'consumers', 'replica-0123456789abcdef'), 3);
    const store = await Store.open(dir);
    try {
      const result = await repair(store, await scrub(store));
      expect(result.unrepaired.map((f) => f.kind === 'store-file-damage' && f.file)).toEqual(['consumers/replica-0123456789abcdef']);
    } finally {
      await store.close();
    }
  });

  it('a journal archive whose file system is gone (the directory missing): journal-archive-unusable naming it and what to do, exit 1, and stats says retirement is held; back, clean', async () => {
    const dir = await storeWithCursors();
    const store = await Store.open(dir);
    const archive = (await store.journalArchive())!;
    await store.close();
    const mounted = `${archive}-mounted`;
    cpSync(archive, mounted, { recursive: true });
    rmSync(archive, { recursive: true });
    const run = cli(['scrub', '--quiet'], dir);
    expect(run.status, run.stderr).toBe(1); // before: 0, clean
    expect(run.stdout).toContain('1 finding(s) of damage; each says what to do (--repair does not mend these)'); // was: run 'scrub --repair --source COPY' to heal
    expect(run.stdout).toContain(`journal-archive-unusable  JOURNAL-ARCHIVE  the journal archive ${archive} is not a directory (not mounted?): until it is back no journal segment is retired (none is deleted; the journal grows); mount it (or create it), or set another ('mailstore snapshot --journal-archive DIR'`);
    const json = JSON.parse(cli(['scrub', '--json'], dir).stdout);
    expect(json.findings).toEqual([expect.objectContaining({ kind: 'journal-archive-unusable', archive, damage: true })]);
    const stats = cli(['stats'], dir); // before: no word of the archive
    expect(stats.stdout).toContain(`journal archive   ${archive}: RETIREMENT HELD: the journal archive ${archive} is not a directory (not mounted?): nothing is retired (nor deleted) until then; mount it`);
    expect(JSON.parse(cli(['stats', '--json'], dir).stdout).journalArchive).toEqual({ path: archive, retirementHeld: expect.stringContaining('not a directory') });
    cpSync(mounted, archive, { recursive: true });
    expect(cli(['scrub', '--quiet'], dir).status).toBe(0);
    expect(JSON.parse(cli(['stats', '--json'], dir).stdout).journalArchive).toEqual({ path: archive });
  });

  it('mailstore snapshot with a damaged replica cursor: the snapshot is written and said so, nothing retired, exit 1 naming the cursor (was CORRUPT, exit 6, as if it had failed)', async () => {
    const dir = await storeWithCursors();
    const store = await Store.open(dir);
    await store.append('INBOX', Buffer.from('Subject: more\r\n\r\nmore\r\n'));
    await store.snapshot(); // the second: from the next one on, retirement reads every cursor
    await store.append('INBOX', Buffer.from('Subject: again\r\n\r\nagain\r\n'));
    await store.close();
    const cursor = join(dir, 'consumers/replica-0123456789abcdef');
    flipByte(cursor, 3);
    const journal = readdirSync(join(dir, 'journal')).sort();
    const text = cli(['snapshot'], dir);
    expect(text.status, text.stderr).toBe(1);
    expect(text.stderr).toBe('');
    expect(text.stdout).toMatch(/^snapshot 0+7\.snap: seq 7, /);
    expect(text.stdout).toContain(`journal not retired, the snapshot is written and verified: a file retirement reads is damaged (scrub reports it as store-file-damage; exit 1): consumer cursor ${cursor} is damaged; 'mailstore consumers --remove replica-0123456789abcdef' forgets it`);
    const json = cli(['snapshot', '--json'], dir);
    expect(json.status).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ seq: 7, reused: true, retired: { segments: [], damagedFile: { path: cursor } } });
    expect(readdirSync(join(dir, 'snapshots'))).toContain('0000000000000007.snap');
    expect(readdirSync(join(dir, 'journal')).sort()).toEqual(journal);
  });

  it('the cursors the store derives (snapshot, compact) are written again by the next compaction and snapshot, as if lost: scrub is clean after them; another consumer\'s is not guessed', async () => {
    const dir = await storeWithCursors();
    for (const file of ['consumers/snapshot', 'consumers/compact']) flipByte(join(dir, file), 3);
    const store = await Store.open(dir);
    try {
      expect((await scrub(store)).findings.filter((f) => f.kind === 'store-file-damage')).toHaveLength(2);
      await store.append('INBOX', Buffer.from('Subject: more\r\n\r\nmore\r\n'));
      await store.compact(); // before: CORRUPT, the compact consumer's cursor did not read
      const taken = await store.snapshot(); // before: CORRUPT, likewise the snapshot consumer's
      expect((await scrub(store)).summary.damage).toBe(0);
      expect((await store.changes.cursor('snapshot'))!.seq).toBe(taken.seq);
      flipByte(join(dir, 'consumers/replica-0123456789abcdef'), 3);
      const segments = store.changes.firstSeq;
      const held = await store.snapshot(); // before: rejected CORRUPT, the snapshot written all the same
      expect(held.retired).toMatchObject({ segments: [], damagedFile: { path: join(dir, 'consumers/replica-0123456789abcdef'), why: expect.stringContaining('is damaged') } });
      expect(store.changes.firstSeq).toBe(segments); // retirement must not pass a replica it cannot read
      await expect(store.changes.cursor('replica-0123456789abcdef')).rejects.toMatchObject({ code: 'CORRUPT' });
    } finally {
      await store.close();
    }
  });
});
