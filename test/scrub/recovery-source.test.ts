// Issue 10 #2 and issue 18 "fix first": a recovery never keeps less than the index it replaces.
// The best surviving source is used (an intact index rewrites a lost or damaged journal; the
// journal rebuilds the index; the packs come last), a rebuild that would lose something is
// REFUSED without --force, and the result says which source it used.
import { describe, expect, it } from 'vitest';
import { cpSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
// every body in a pack: these tests damage or lose the journal and rebuild from packs (helpers/packed.ts)
import { PackedStore as Store } from '../helpers/packed.js';
import { Store as InlineStore } from '../../src/store/store.js';
import { scrub } from '../../src/scrub/scrub.js';
import { parseSegment } from '../../src/journal/segment-reader.js';
import { fillerStart } from '../../src/journal/journal-format.js';
import { limits } from '../../src/limits.js';
import { tmpDir } from '../helpers/tmp.js';

const CLI = new URL('../../dist/src/cli/main.js', import.meta.url).pathname;
const cli = (args: string[], dir: string) => spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, MAILSTORE_DIR: dir }, encoding: 'utf8' });

/** Mailboxes (ACLs, owners, uidValidity, counts) and every message (uid, flags, modseq, hash). */
async function snapshot(dir: string) {
  const store = await Store.open(dir);
  try {
    const out: Record<string, unknown> = {};
    for (const { name } of await store.listMailboxes()) {
      const messages: unknown[] = [];
      for await (const m of store.messages(name)) messages.push([m.uid, m.flags, m.modseq, m.hash]);
      const { created: _created, ...summary } = await store.mailbox(name);
      out[name] = { summary, status: await store.status(name), messages };
    }
    return out;
  } finally {
    await store.close();
  }
}

/** 20 messages in INBOX, one journal segment. */
async function twentyMessages(): Promise<string> {
  const dir = tmpDir();
  const store = await Store.open(dir, { create: true });
  await store.createMailbox('INBOX');
  for (let i = 0; i < 20; i++) await store.append('INBOX', Buffer.from(`Subject: ${i}\r\n\r\nbody ${i}\r\n`));
  await store.close();
  return dir;
}

/** Several users' mailboxes with ACLs, flags, copies, expunges, a rename and a delete. */
async function busyStore(): Promise<string> {
  const dir = tmpDir();
  const store = await Store.open(dir, { create: true, packBytesMax: 32 * 1024 });
  for (const user of ['alice', 'bob', 'carol']) {
    for (const box of ['INBOX', 'Sent', 'Archive/2024']) await store.createMailbox(`user/${user}/${box}`, { owner: user });
    await store.setAcl(`user/${user}/INBOX`, 'helpdesk', 'lrs');
  }
  await store.createMailbox('shared/news', { acl: { anyone: 'lr' } });
  let n = 0;
  for (const user of ['alice', 'bob', 'carol']) {
    for (let i = 0; i < 15; i++) {
      const r = await store.append(`user/${user}/INBOX`, Buffer.from(`Subject: ${user} ${i}\r\n\r\n${'x'.repeat(200 + n++ * 13)}\r\n`), { flags: i % 3 ? ['\\Seen'] : [] });
      if (i % 4 === 0) await store.setFlags(`user/${user}/INBOX`, r.uid, { add: ['\\Flagged', '$Work'] });
    }
    await store.copy(`user/${user}/INBOX`, [1, 2, 3], `user/${user}/Archive/2024`);
    await store.expunge(`user/${user}/INBOX`, [5, 6, 7]);
  }
  await store.renameMailbox('user/carol/Sent', 'user/carol/Outbox');
  await store.createMailbox('tmp');
  await store.append('tmp', Buffer.from('Subject: gone\r\n\r\ndeleted with its mailbox\r\n'));
  await store.deleteMailbox('tmp');
  await store.close();
  return dir;
}

/** Flips a byte inside the payload of the journal record with this seq. */
function damageJournalRecord(dir: string, seq: number): void {
  for (const name of readdirSync(join(dir, 'journal')).filter((n) => n.endsWith('.jnl'))) {
    const path = join(dir, 'journal', name);
    const bytes = readFileSync(path);
    for (const item of parseSegment(bytes, limits.journalRecordBytesMax)) {
      if (item.kind === 'record' && item.seq === seq) {
        bytes[item.offset + 24 + Math.floor((item.end - item.offset - 24) / 2)] ^= 0x04;
        writeFileSync(path, bytes);
        return;
      }
    }
  }
  throw new Error(`no record ${seq}`);
}

describe('reconstruct uses the best surviving source', () => {
  it('(a) a flipped byte in the middle of the journal: the index is kept, a new journal written from it; --from-journal is REFUSED', async () => {
    const dir = await twentyMessages();
    const before = await snapshot(dir);
    damageJournalRecord(dir, 10);
    const check = cli(['reconstruct', '--check', '--json'], dir);
    expect(check.status, check.stderr).toBe(1);
    expect(JSON.parse(check.stdout)).toMatchObject({ source: 'index', journalIntact: false, messagesBefore: 20, messagesAfter: 20 });
    const refused = cli(['reconstruct', '--from-journal'], dir);
    expect(refused.status).toBe(3);
    expect(refused.stderr).toMatch(/REFUSED: .*lose 1 of 20 messages.*--force/);
    const done = cli(['reconstruct'], dir);
    expect(done.status, done.stderr).toBe(0);
    expect(done.stdout).toMatch(/^source: index/);
    expect(done.stdout).not.toMatch(/19 messages/);
    expect(await snapshot(dir)).toEqual(before);
    expect(cli(['reconstruct', '--check'], dir).status).toBe(0);
    expect(cli(['scrub'], dir).status).toBe(0);
    // the new journal holds everything: the index can be lost now
    rmSync(join(dir, 'index'), { recursive: true });
    expect(await snapshot(dir)).toEqual(before);
  });

  it('(b) journal/ lost, index intact: reconstruct --from-packs keeps every mailbox, ACL and flag, resurrects nothing deleted', async () => {
    const dir = await busyStore();
    const before = await snapshot(dir);
    expect(Object.keys(before).length).toBe(10);
    const copy = tmpDir('copy');
    cpSync(dir, copy, { recursive: true });
    for (const target of [dir, copy]) rmSync(join(target, 'journal'), { recursive: true });
    const fromPacks = cli(['reconstruct', '--from-packs', '--json'], dir);
    expect(fromPacks.status, fromPacks.stderr).toBe(0);
    const result = JSON.parse(fromPacks.stdout);
    expect(result).toMatchObject({ source: 'index', journalRecreated: true, lostAndFound: { messages: 0 } });
    expect(result.after).toEqual(result.before);
    expect(result.journalRewritten.differences).toBe(0); // the checkpoint reproduces the index key for key
    expect(await snapshot(dir)).toEqual(before);
    // the plain command does the same
    const plain = cli(['reconstruct'], copy);
    expect(plain.status, plain.stderr).toBe(0);
    expect(plain.stdout).toMatch(/^source: index/);
    expect(await snapshot(copy)).toEqual(before);
    // and the new journal alone rebuilds it all
    rmSync(join(copy, 'index'), { recursive: true });
    expect(await snapshot(copy)).toEqual(before);
    const store = await Store.open(copy);
    try {
      expect(store.health.degraded).toBe(false);
      expect((await scrub(store)).summary.damage).toBe(0);
      // writing goes on after the checkpoint: new uids and modseqs above everything before
      const status = await store.status('user/alice/INBOX');
      const r = await store.append('user/alice/INBOX', Buffer.from('Subject: after\r\n\r\nafter\r\n'));
      expect(r.uid).toBe(status.uidNext);
      expect((await store.status('user/alice/INBOX')).highestModseq).toBeGreaterThan(status.highestModseq);
    } finally {
      await store.close();
    }
  });

  it('a complete journal rebuilds the index (source: journal); all journal segments deleted: the index rewrites it', async () => {
    const dir = await busyStore();
    const before = await snapshot(dir);
    const journal = cli(['reconstruct', '--json'], dir);
    expect(journal.status, journal.stderr).toBe(0);
    expect(JSON.parse(journal.stdout)).toMatchObject({ source: 'journal', journalIntact: true });
    for (const name of readdirSync(join(dir, 'journal')).filter((n) => n.endsWith('.jnl'))) rmSync(join(dir, 'journal', name));
    expect(cli(['scrub'], dir).status).toBe(1);
    const index = cli(['reconstruct'], dir);
    expect(index.status, index.stderr).toBe(0);
    expect(index.stdout).toMatch(/^source: index/);
    expect(await snapshot(dir)).toEqual(before);
    expect(cli(['scrub'], dir).status).toBe(0);
  });

  it('a journal/ or packs/ STORE-ID alone lost or damaged: reconstruct writes it again from the files\' headers, keeping the journal and its inline bodies; another store\'s journal is not adopted, nor one with another store\'s segment among them', async () => {
    const dir = tmpDir();
    const store = await InlineStore.open(dir, { create: true });
    const bodies: Buffer[] = [];
    try {
      await store.createMailbox('INBOX');
      const packed = [0, 1].map((i) => Buffer.from(`Subject: packed ${i}\r\n\r\n${'p'.repeat(300)}\r\n`));
      await store.appendBatch('INBOX', packed.map((bytes) => ({ bytes })));
      bodies.push(...packed);
      for (let i = 0; i < 4; i++) {
        bodies.push(Buffer.from(`Subject: inline ${i}\r\n\r\nonly in its journal record ${i}\r\n`));
        await store.append('INBOX', bodies.at(-1)!); // delivered alone: inside its journal record
      }
    } finally {
      await store.close();
    }
    for (const [where, damage] of [['journal', 'flip'], ['journal', 'delete'], ['packs', 'flip'], ['packs', 'delete']] as const) {
      const copy = tmpDir(`${where}-${damage}`);
      cpSync(dir, copy, { recursive: true });
      const marker = join(copy, where, 'STORE-ID');
      if (damage === 'delete') rmSync(marker);
      else writeFileSync(marker, Buffer.from(readFileSync(marker).map((b, i) => (i === 3 ? b ^ 0x04 : b))));
      const refused = cli(['scrub'], copy);
      expect(refused.status, `${where} ${damage}`).toBe(3);
      expect(refused.stderr).toMatch(/'mailstore reconstruct' writes it again/);
      const done = cli(['reconstruct'], copy);
      expect(done.status, done.stderr).toBe(0);
      expect(done.stdout).toContain(`${where}/STORE-ID was missing or damaged: written again`);
      const reopened = await InlineStore.open(copy);
      try {
        for (let uid = 1; uid <= bodies.length; uid++) expect((await reopened.fetch('INBOX', uid)).equals(bodies[uid - 1]), `${where} ${damage} uid ${uid}`).toBe(true);
      } finally {
        await reopened.close();
      }
      expect(cli(['scrub'], copy).status).toBe(0);
    }
    // another store's segment in journal/: not this store's journal, so the marker is not written over it
    const other = await twentyMessages();
    const copy = tmpDir('foreign');
    cpSync(dir, copy, { recursive: true });
    rmSync(join(copy, 'journal'), { recursive: true });
    cpSync(join(other, 'journal'), join(copy, 'journal'), { recursive: true });
    rmSync(join(copy, 'journal', 'STORE-ID'));
    const foreign = cli(['reconstruct'], copy);
    expect(foreign.stdout).not.toContain('STORE-ID was missing or damaged');
    expect(readdirSync(join(copy, 'quarantine')).some((n) => n.startsWith('journal-lost'))).toBe(true); // set aside whole, as before
    // this store's segments and one of another store's beside them: not all this store's, so the same
    const mixed = tmpDir('mixed');
    cpSync(dir, mixed, { recursive: true });
    const foreignSegment = readdirSync(join(other, 'journal')).filter((n) => n.endsWith('.jnl'))[0];
    cpSync(join(other, 'journal', foreignSegment), join(mixed, 'journal', '0000000000099999.jnl'));
    rmSync(join(mixed, 'journal', 'STORE-ID'));
    const mixedRun = cli(['reconstruct'], mixed);
    expect(mixedRun.stdout).not.toContain('STORE-ID was missing or damaged');
    expect(readdirSync(join(mixed, 'quarantine')).some((n) => n.startsWith('journal-lost'))).toBe(true);
  });

  it('both snapshots damaged over a retired journal, index lost: --from-packs files the inline bodies still in the journal into lost+found too, not an expunged one', async () => {
    const dir = tmpDir();
    const store = await InlineStore.open(dir, { create: true, journalSegmentBytesMax: 1024 });
    const live = new Set<string>();
    let expunged = '';
    try {
      await store.createMailbox('INBOX');
      const deliver = async (i: number) => {
        const bytes = Buffer.from(`Date: Mon, ${1 + (i % 28)} Dec 2025 10:00:00 +0000\r\nSubject: ${i}\r\n\r\ndelivered alone ${i}\r\n`);
        live.add(bytes.toString('latin1'));
        return { bytes, uid: (await store.append('INBOX', bytes)).uid };
      };
      for (let i = 0; i < 6; i++) await deliver(i);
      await store.snapshot();
      for (let i = 6; i < 12; i++) await deliver(i);
      const second = await store.snapshot();
      expect(second.retired.segments.length).toBeGreaterThan(0); // the mailbox's create record is gone from the journal
      const last = [];
      for (let i = 12; i < 16; i++) last.push(await deliver(i));
      await store.expunge('INBOX', last[0].uid);
      expunged = last[0].bytes.toString('latin1');
      live.delete(expunged);
    } finally {
      await store.close();
    }
    for (const name of readdirSync(join(dir, 'snapshots')).filter((n) => n.endsWith('.snap'))) {
      const path = join(dir, 'snapshots', name);
      const bytes = readFileSync(path);
      bytes[bytes.length >> 1] ^= 0x10;
      writeFileSync(path, bytes);
    }
    rmSync(join(dir, 'index'), { recursive: true });
    const result = cli(['reconstruct', '--from-packs', '--json'], dir);
    const found = new Set<string>();
    const reopened = await InlineStore.open(dir);
    try {
      for await (const m of reopened.messages('lost+found')) found.add((await reopened.fetch('lost+found', m.uid)).toString('latin1'));
    } finally {
      await reopened.close();
    }
    expect(JSON.parse(result.stdout).lostAndFound, result.stderr).toMatchObject({ mailbox: 'lost+found' });
    for (const bytes of live) expect(found.has(bytes), bytes.split('\r\n')[1]).toBe(true); // before: the inline ones after the first snapshot were left out
    expect(found.has(expunged)).toBe(false);
  });

  it('a journal rewrite interrupted between its two renames: open refuses (UNMOUNTED), reconstruct finishes it; an index from before the rewrite replays the checkpoint unchanged', async () => {
    const dir = await busyStore();
    const before = await snapshot(dir);
    for (const name of readdirSync(join(dir, 'journal')).filter((n) => n.endsWith('.jnl'))) rmSync(join(dir, 'journal', name));
    const oldIndex = tmpDir('old-index');
    cpSync(join(dir, 'index'), oldIndex, { recursive: true });
    expect(cli(['reconstruct'], dir).status).toBe(0);
    // the state a crash after "journal/ to quarantine/" leaves, with the index not yet replaced
    renameSync(join(dir, 'journal'), join(dir, 'journal.rebuild'));
    writeFileSync(join(dir, 'journal.rebuild', 'COMPLETE'), 'done\n');
    rmSync(join(dir, 'index'), { recursive: true });
    cpSync(oldIndex, join(dir, 'index'), { recursive: true });
    await expect(Store.open(dir)).rejects.toMatchObject({ code: 'UNMOUNTED' });
    const finished = cli(['reconstruct', '--json'], dir);
    expect(finished.status, finished.stderr).toBe(0);
    expect(JSON.parse(finished.stdout)).toMatchObject({ source: 'journal', journalIntact: true, differences: 0 });
    expect(await snapshot(dir)).toEqual(before);
    const store = await Store.open(dir);
    try {
      expect(store.health.degraded).toBe(false);
    } finally {
      await store.close();
    }
  });

  it('a checkpoint larger than a segment spans several segments, and replays whole (library: Store.rewriteJournalFromIndex)', async () => {
    const dir = await busyStore();
    const before = await snapshot(dir);
    let store = await Store.open(dir, { journalSegmentBytesMax: 2048 });
    try {
      const written = await store.maintenance().rewriteJournalFromIndex();
      expect(written.differences).toBe(0);
      expect(readdirSync(join(dir, 'journal')).filter((n) => n.endsWith('.jnl')).length).toBeGreaterThan(3);
      // writing goes on in the new journal
      await store.append('shared/news', Buffer.from('Subject: after\r\n\r\nafter the checkpoint\r\n'));
    } finally {
      await store.close();
    }
    rmSync(join(dir, 'index'), { recursive: true });
    store = await Store.open(dir);
    try {
      expect(store.health.degraded).toBe(false);
      expect((await store.status('shared/news')).messages).toBe(1);
      expect((await scrub(store)).summary.damage).toBe(0);
    } finally {
      await store.close();
    }
    const after = await snapshot(dir);
    expect({ ...after, 'shared/news': undefined }).toEqual({ ...before, 'shared/news': undefined });
  });
});

describe('an inline body that does not read back after a recovery', () => {
  /** 8 deliveries inside their journal records (segments of 1 KiB), a snapshot at seq 9, 2 more; and a copy of it. */
  async function inlineUnderSnapshot(): Promise<{ dir: string; copy: string; bodies: Buffer[] }> {
    const dir = tmpDir('inline-under-snapshot');
    const bodies: Buffer[] = [];
    const store = await InlineStore.open(dir, { create: true, journalSegmentBytesMax: 1024 });
    try {
      await store.createMailbox('INBOX');
      for (let i = 0; i < 10; i++) {
        if (i === 8) expect((await store.snapshot()).seq).toBe(9);
        bodies.push(Buffer.from(`Subject: ${i}\r\n\r\ninline body ${i} ${'x'.repeat(200)}\r\n`));
        await store.append('INBOX', bodies[i]);
      }
    } finally {
      await store.close();
    }
    const copy = tmpDir('inline-under-snapshot-copy');
    cpSync(dir, copy, { recursive: true });
    return { dir, copy, bodies };
  }

  /** Flips a bit inside the body of message i where its record is (the body is its only copy). */
  function flipInBody(dir: string, i: number): string {
    for (const name of readdirSync(join(dir, 'journal')).filter((n) => n.endsWith('.jnl'))) {
      const path = join(dir, 'journal', name);
      const bytes = readFileSync(path);
      const at = bytes.indexOf(`inline body ${i} `);
      if (at < 0) continue;
      bytes[at + 40] ^= 0x04;
      writeFileSync(path, bytes);
      return name;
    }
    throw new Error(`no body ${i}`);
  }

  it('below the newest snapshot: reconstruct rebuilds from it, and says which message has no readable body (exit 1, --json too), until scrub --repair --source COPY heals it', async () => {
    const { dir, copy, bodies } = await inlineUnderSnapshot();
    expect(flipInBody(dir, 1)).toBe('0000000000000001.jnl'); // uid 2, record 3: below the snapshot, in a segment no longer written
    const json = cli(['reconstruct', '--json'], dir);
    expect(json.status, json.stderr).toBe(1); // before: 0, "the index is rebuilt", and fetch of uid 2 CORRUPT
    const result = JSON.parse(json.stdout);
    expect(result).toMatchObject({ source: 'snapshot', journalIntact: true, degraded: true, unreadable: { messages: 1 } });
    expect(result.unreadable.bodies).toHaveLength(1);
    expect(result.unreadable.bodies[0]).toMatchObject({ kind: 'blob-missing', pack: -1, offset: 3, refs: [{ mailbox: 'INBOX', uid: 2 }] });
    const text = cli(['reconstruct'], dir);
    expect(text.status, text.stderr).toBe(1);
    expect(text.stdout).toMatch(/^source: snapshot/);
    expect(text.stdout).toMatch(/1 message\(s\) have no readable body.*INBOX:2.*'mailstore scrub --repair --source COPY'/);
    // scrub finds the same, and heals it from the copy; reconstruct is then whole again
    expect(cli(['scrub'], dir).status).toBe(1);
    const repaired = cli(['scrub', '--repair', '--source', copy], dir);
    expect(repaired.status, repaired.stdout + repaired.stderr).toBe(0);
    const again = cli(['reconstruct', '--json'], dir);
    expect(again.status, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ degraded: false, unreadable: { messages: 0, bodies: [] } });
    const store = await InlineStore.open(dir);
    try {
      for (let uid = 1; uid <= bodies.length; uid++) expect((await store.fetch('INBOX', uid)).equals(bodies[uid - 1]), `uid ${uid}`).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('in the newest segment: the index writes a new journal (the damaged one to quarantine/) and reconstruct says the body is unreadable, exit 1; --check too', async () => {
    const { dir } = await inlineUnderSnapshot();
    const newest = readdirSync(join(dir, 'journal')).filter((n) => n.endsWith('.jnl')).sort().at(-1);
    expect(flipInBody(dir, 9)).toBe(newest); // uid 10, record 11, after the snapshot: open finds the damage
    const check = cli(['reconstruct', '--check', '--json'], dir);
    expect(check.status, check.stderr).toBe(1);
    expect(JSON.parse(check.stdout).unreadable).toMatchObject({ messages: 1, bodies: [{ refs: [{ mailbox: 'INBOX', uid: 10 }] }] });
    const done = cli(['reconstruct'], dir);
    expect(done.status, done.stderr).toBe(1); // before: 0
    expect(done.stdout).toMatch(/^source: index/);
    expect(done.stdout).toMatch(/1 message\(s\) have no readable body.*INBOX:10/);
  });
});

describe('a journal rewrite that fails', () => {
  it('a full disk while writing the new journal: NO_SPACE, journal/ and the index untouched, journal.rebuild/ gone, the store goes on', async () => {
    const { FaultFileSystem } = await import('../sim/faultfs.js');
    const { existsSync } = await import('node:fs');
    const dir = await twentyMessages();
    const before = await snapshot(dir);
    const journalBefore = readdirSync(join(dir, 'journal')).sort().map((n) => [n, readFileSync(join(dir, 'journal', n)).toString('hex')]);
    const fs = new FaultFileSystem();
    const store = await Store.open(dir, { fs });
    try {
      fs.injectAt((op) => op.kind === 'write' && op.path.includes('.jnl'), 'ENOSPC', { times: Infinity });
      await expect(store.maintenance().rewriteJournalFromIndex()).rejects.toMatchObject({ code: 'NO_SPACE' });
      fs.clear();
      expect(existsSync(join(dir, 'journal.rebuild'))).toBe(false);
      await store.append('INBOX', Buffer.from('Subject: after\r\n\r\nafter\r\n'));
    } finally {
      await store.close();
    }
    const journalAfter = readdirSync(join(dir, 'journal')).sort().map((n) => [n, readFileSync(join(dir, 'journal', n)).toString('hex')]);
    expect(journalAfter.map(([n]) => n)).toEqual(journalBefore.map(([n]) => n));
    // only the later append was added (over the filler the journal preallocated after its last record)
    const recordsBefore = Buffer.from(journalBefore[0][1], 'hex');
    expect(journalAfter[0][1].startsWith(recordsBefore.subarray(0, fillerStart(recordsBefore, 0)).toString('hex'))).toBe(true);
    const after = await snapshot(dir);
    expect((after.INBOX as { messages: unknown[] }).messages.slice(0, 20)).toEqual((before.INBOX as { messages: unknown[] }).messages);
  });
});
