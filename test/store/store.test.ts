import { limits } from '../../src/limits.js';
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync, renameSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawn } from 'node:child_process';
import { Store } from '../../src/store/store.js';
import { MailstoreError } from '../../src/errors.js';
import { keys } from '../../src/keys/index-keys.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { describeEachFs } from '../helpers/filesystems.js';
import { packed } from '../helpers/packed.js';
import { corporaDir, haveCorpora, tmpDir } from '../helpers/tmp.js';
import { internalsOf, rawLevelOf } from '../helpers/internals.js';

async function expectCode(promise: Promise<unknown> | (() => unknown), code: string): Promise<MailstoreError> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (error) {
    expect(error).toBeInstanceOf(MailstoreError);
    expect((error as MailstoreError).code).toBe(code);
    expect((error as MailstoreError).message.length).toBeGreaterThan(10);
    return error as MailstoreError;
  }
  throw new Error(`expected ${code}, nothing was thrown`);
}

const msg = (i: number | string) => Buffer.from(`From: a@example.org\r\nSubject: ${i}\r\n\r\nbody ${i}\r\n`);

/** Everything the API returns about a store, for before/after comparisons. */
async function snapshot(store: Store) {
  const out: Record<string, unknown> = {};
  for (const { name } of await store.listMailboxes()) {
    const messages = [];
    for await (const m of store.messages(name)) messages.push(m);
    out[name] = {
      status: await store.status(name), mailbox: await store.mailbox(name), messages, changes: await store.changesSince(name, 0),
    };
  }
  out['rights:alice'] = await store.listMailboxes({ user: 'alice' });
  out['rights:anyone'] = await store.listMailboxes({ user: 'anyone' });
  out.stats = { ...(await store.stats()), journalBytes: 0, journalSegments: 0, freeSpace: undefined, quarantine: undefined }; // the disk's free space moves with other processes; a rebuild sets the damaged index aside in quarantine/
  return JSON.stringify(out);
}

describeEachFs('store core', ({ Store }) => {
  it('dedups identical bytes: one pack record, refs 2, and refs 0 after expunging both', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, packed({ create: true }));
    await store.createMailbox('a');
    await store.createMailbox('b');
    const one = await store.append('a', msg(1));
    const two = await store.append('b', msg(1));
    expect(one.deduplicated).toBe(false);
    expect(two.deduplicated).toBe(true);
    expect(two.hash).toBe(one.hash);
    const stats = await store.stats();
    expect(stats.blobs).toBe(1);
    const blob = await store.maintenance().index.get<{ r: number }>(keys.blob(Buffer.from(one.hash, 'hex')));
    expect(blob!.r).toBe(2);
    // exactly one record in the pack
    const pack = readFileSync(join(dir, 'packs', readdirSync(join(dir, 'packs')).find((n) => n.endsWith('.pack'))!));
    expect(pack.toString('latin1').split('MSB1').length - 1).toBe(1);
    await store.expunge('a', one.uid);
    await store.expunge('b', two.uid);
    expect((await store.maintenance().index.get<{ r: number }>(keys.blob(Buffer.from(one.hash, 'hex'))))!.r).toBe(0);
    await store.close();
  });

  it('group commit: 1,000 concurrent appends share far fewer fsyncs, and all are there after reopen', async () => {
    const dir = tmpDir();
    const fs = new FaultFileSystem();
    let batches = 0;
    let store = await Store.open(dir, { create: true, fs, onCommit: () => { batches++; } });
    await store.createMailbox('INBOX');
    const before = fs.counters().sync;
    const results = await Promise.all(Array.from({ length: 1000 }, (_, i) => store.append('INBOX', msg(i))));
    const syncs = fs.counters().sync - before;
    expect(syncs).toBeLessThan(100);
    expect(batches).toBeLessThan(50);
    expect(new Set(results.map((r) => r.uid)).size).toBe(1000);
    await store.close();
    store = await Store.open(dir);
    expect((await store.status('INBOX')).messages).toBe(1000);
    for (const r of results.filter((_, i) => i % 97 === 0)) {
      expect((await store.fetch('INBOX', r.uid)).toString()).toContain('body');
    }
    await store.close();
  });

  it('rebuild: delete index/, reopen → the same mailboxes, messages, flags, modseqs, ACLs and reverse map', async () => {
    const dir = tmpDir();
    let store = await Store.open(dir, { create: true });
    await store.createMailbox('user/alice/INBOX', { owner: 'alice' });
    await store.createMailbox('user/alice/Sent', { owner: 'alice' });
    await store.createMailbox('shared/news', { acl: { anyone: 'lr' } });
    for (let i = 0; i < 50; i++) await store.append(i % 2 ? 'user/alice/INBOX' : 'shared/news', msg(i), { flags: i % 3 ? ['\\Seen'] : [], internalDate: 1_700_000_000_000 + i });
    await store.setFlags('user/alice/INBOX', [1, 2, 3], { add: ['\\Flagged', 'work'] });
    await store.expunge('shared/news', [2, 4]);
    await store.copy('user/alice/INBOX', [1, 5], 'user/alice/Sent');
    await store.move('shared/news', [6], 'user/alice/Sent');
    await store.setAcl('user/alice/INBOX', 'bob', 'lrs');
    await store.renameMailbox('user/alice/Sent', 'user/alice/Sent Items');
    await store.createMailbox('tmp');
    await store.append('tmp', msg('tmp'));
    await store.deleteMailbox('tmp');
    const before = await snapshot(store);
    await store.close();
    rmSync(join(dir, 'index'), { recursive: true });
    store = await Store.open(dir);
    expect(store.health.rebuilt).toBe('index is missing');
    expect(store.health.degraded).toBe(false);
    expect(await snapshot(store)).toBe(before);
    await store.close();
  });

  it('an index whose CURRENT was deleted is rebuilt, not opened empty', async () => {
    const dir = tmpDir();
    let store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    await store.append('INBOX', msg(1));
    const before = await snapshot(store);
    await store.close();
    rmSync(join(dir, 'index', 'CURRENT'));
    store = await Store.open(dir);
    expect(store.health.rebuilt).toMatch(/cannot be opened|damaged|store id/);
    expect(await snapshot(store)).toBe(before);
    // the damaged index was moved aside, not deleted
    expect(readdirSync(join(dir, 'quarantine')).some((n) => n.startsWith('index-damaged'))).toBe(true);
    await store.close();
  });

  it('rename of a mailbox with 10,000 messages writes a constant number of index keys and keeps the old name', async () => {
    const dir = tmpDir();
    const written: number[] = [];
    const store = await Store.open(dir, { create: true, onCommit: (_a, _b, _m, indexKeys) => written.push(indexKeys) });
    await store.createMailbox('big', { owner: 'alice' });
    await store.createMailbox('small', { owner: 'alice' });
    for (let i = 0; i < 10; i++) {
      await store.appendBatch('big', Array.from({ length: 1000 }, (_, k) => ({ bytes: msg(`${i}-${k}`) })));
    }
    await store.append('small', msg('s'));
    written.length = 0;
    await store.renameMailbox('big', 'huge');
    const bigKeys = written[0];
    written.length = 0;
    await store.renameMailbox('small', 'tiny');
    expect(bigKeys).toBe(written[0]);
    expect(bigKeys).toBeLessThanOrEqual(8);
    expect((await store.mailbox('huge')).pastNames).toEqual(['big']);
    expect((await store.status('huge')).messages).toBe(10_000);
    expect((await store.fetch('huge', 9999)).toString()).toContain('body 9-998');
    await expectCode(store.status('big'), 'NOT_FOUND');
    await store.close();
  });

  it('renames a hierarchy: children follow, the reverse ACL map follows', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true });
    for (const n of ['a', 'a/b', 'a/b/c', 'a b', 'ab']) await store.createMailbox(n, { owner: 'u' });
    await store.renameMailbox('a', 'z');
    expect((await store.listMailboxes()).map((m) => m.name)).toEqual(['a b', 'ab', 'z', 'z/b', 'z/b/c']);
    expect((await store.listMailboxes({ user: 'u', pattern: 'z/*' })).map((m) => m.name)).toEqual(['z/b', 'z/b/c']);
    expect((await store.listMailboxes({ pattern: 'z/%' })).map((m) => m.name)).toEqual(['z/b']);
    await expectCode(store.renameMailbox('z', 'z/inside'), 'INVALID');
    await expectCode(store.renameMailbox('ab', 'a b'), 'EXISTS');
    await store.close();
  });

  it('ACLs: which mailboxes may a user see is answered from the reverse map', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('user/alice/INBOX', { owner: 'alice' });
    await store.createMailbox('user/bob/INBOX', { owner: 'bob' });
    await store.createMailbox('public', { acl: { anyone: 'lr' } });
    await store.setAcl('user/bob/INBOX', 'alice', 'lr');
    expect((await store.listMailboxes({ user: 'alice' })).map((m) => m.name)).toEqual(['public', 'user/alice/INBOX', 'user/bob/INBOX']);
    await store.setAcl('user/bob/INBOX', 'alice', '');
    expect((await store.listMailboxes({ user: 'alice' })).map((m) => m.name)).toEqual(['public', 'user/alice/INBOX']);
    await store.setAcl('user/bob/INBOX', 'carol', 'r'); // no 'l': not listed
    expect((await store.listMailboxes({ user: 'carol' })).map((m) => m.name)).toEqual(['public']);
    expect(await store.getAcl('user/bob/INBOX')).toEqual({ bob: 'aeiklnprstwx', carol: 'r' });
    await expectCode(store.setAcl('public', 'x', 'lrQ'), 'INVALID');
    await store.close();
  });

  it('flags, CONDSTORE unchangedSince, changesSince and strictly increasing uids and modseqs', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    const a = await store.append('INBOX', msg(1));
    const b = await store.append('INBOX', msg(2));
    expect(b.uid).toBeGreaterThan(a.uid);
    const s0 = await store.status('INBOX');
    const r1 = await store.setFlags('INBOX', [a.uid], { add: ['\\seen', '$Label1'] });
    expect(r1.updated).toEqual([a.uid]);
    expect(r1.modseq).toBeGreaterThan(s0.highestModseq);
    const r2 = await store.setFlags('INBOX', [a.uid, b.uid], { add: ['\\Flagged'], unchangedSince: s0.highestModseq });
    expect(r2.modified).toEqual([a.uid]);
    expect(r2.updated).toEqual([b.uid]);
    expect((await store.messageInfo('INBOX', a.uid)).flags).toEqual(['$Label1', '\\Seen']);
    const changes = await store.changesSince('INBOX', s0.highestModseq);
    expect(changes.changed.map((c) => c.uid)).toEqual([a.uid, b.uid]);
    await store.expunge('INBOX', [a.uid]);
    const c = await store.append('INBOX', msg(3));
    expect(c.uid).toBe(b.uid + 1); // never reused
    expect((await store.changesSince('INBOX', r2.modseq)).vanished).toEqual([a.uid]);
    expect((await store.status('INBOX'))).toMatchObject({ messages: 2, unseen: 2 });
    await store.close();
  });

  it('changesSince while other clients change flags answers one point in time: no change above the highestModseq it gives, none missed from there', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    const uids = (await store.appendBatch('INBOX', Array.from({ length: 2000 }, (_, i) => ({ bytes: msg(i) })))).map((r) => r.uid);
    let since = 0;
    const seen = new Map<number, number>(); // uid -> modseq, as a QRESYNC client keeps it
    for (let round = 0; round < 12; round++) {
      const flagging = Promise.all([0, 1, 2].map((k) => store.setFlags('INBOX', [uids[(round * 7 + k * 611) % uids.length]], { add: [`r${round}`] })));
      const answer = await store.changesSince('INBOX', since);
      await flagging;
      for (const c of answer.changed) {
        expect(c.modseq, `uid ${c.uid}`).toBeLessThanOrEqual(answer.highestModseq);
        expect(c.modseq).toBeGreaterThan(since);
        seen.set(c.uid, c.modseq);
      }
      since = answer.highestModseq;
    }
    const last = await store.changesSince('INBOX', since);
    for (const c of last.changed) seen.set(c.uid, c.modseq);
    for await (const m of store.messages('INBOX')) expect(seen.get(m.uid), `uid ${m.uid}: the client's copy`).toBe(m.modseq);
    await store.close();
  });

  it('listMailboxes for a user while another client renames a mailbox lists it once, under one of its names', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true });
    for (let i = 0; i < 300; i++) await store.createMailbox(`Shared/b${i}`, { acl: { bob: 'lr', anyone: 'lr' } });
    for (let k = 0; k < 10; k++) {
      const [from, to] = k % 2 ? ['Shared/b150x', 'Shared/b150'] : ['Shared/b150', 'Shared/b150x'];
      const [list] = await Promise.all([store.listMailboxes({ user: 'bob' }), store.renameMailbox(from, to)]);
      expect(new Set(list.map((m) => m.id)).size, `try ${k}: a mailbox listed twice`).toBe(300);
      expect(list).toHaveLength(300);
    }
    await store.close();
  });

  it('delete is intent-logged: an interrupted delete is finished by the next open', async () => {
    const dir = tmpDir();
    const fs = new FaultFileSystem();
    let store = await Store.open(dir, { create: true, fs });
    await store.createMailbox('doomed');
    await store.createMailbox('kept');
    await store.appendBatch('doomed', Array.from({ length: 30 }, (_, i) => ({ bytes: msg(`d${i}`) })));
    await store.append('kept', msg('d0')); // shares a blob with doomed
    // let the intent record through, fail the journal write of the first chunk
    let journalWrites = 0;
    fs.injectAt((op) => op.kind === 'write' && op.path.includes('journal') && ++journalWrites === 2, 'EIO');
    await expectCode(store.deleteMailbox('doomed'), 'IO');
    expect((await store.listMailboxes()).map((m) => m.name)).toEqual(['kept']);
    await store.close();
    fs.clear();
    store = await Store.open(dir, { fs });
    expect((await store.listMailboxes()).map((m) => m.name)).toEqual(['kept']);
    const stats = await store.stats();
    expect(stats.messages).toBe(1);
    expect(stats.mailboxes).toBe(1);
    expect((await store.fetch('kept', 1)).equals(msg('d0'))).toBe(true);
    await store.createMailbox('doomed'); // the name is free, with a new uidvalidity
    await store.close();
  });

  it('a close between a delete\'s intent record and its chunks waits for the delete: the caller is answered, not CLOSED', async () => {
    const dir = tmpDir();
    let closing: Promise<void> | undefined;
    let begun = false;
    const store: Store = await Store.open(dir, {
      create: true,
      // the delete's intent record committed: another caller closes the store now
      onCommit: () => { if (begun && !closing) closing = store.close(); },
    });
    await store.createMailbox('doomed');
    await store.appendBatch('doomed', Array.from({ length: 30 }, (_, i) => ({ bytes: msg(`d${i}`) })));
    begun = true;
    expect(await store.deleteMailbox('doomed')).toEqual({ messages: 30 });
    expect(closing).toBeDefined();
    await closing;
    const reopened = await Store.open(dir);
    expect(await reopened.listMailboxes()).toEqual([]);
    expect((await reopened.stats()).messages).toBe(0);
    // closed while the intent record is still queued
    await reopened.createMailbox('doomed');
    await reopened.appendBatch('doomed', [{ bytes: msg('d') }]);
    const queued = reopened.deleteMailbox('doomed');
    await reopened.close();
    expect(await queued).toEqual({ messages: 1 });
    // a user's delete (its mailboxes one after the other), closed once its intent record committed
    let userClosing: Promise<void> | undefined;
    let armed = false;
    const users: Store = await Store.open(dir, { onCommit: () => { if (armed && !userClosing) userClosing = users.close(); } });
    for (const box of ['user/bob/INBOX', 'user/bob/Sent']) await users.appendBatch((await users.createMailbox(box)).name, [{ bytes: msg(box) }]);
    armed = true;
    expect(await users.deleteUser('bob')).toEqual(expect.objectContaining({ mailboxes: 2, messages: 2 }));
    await userClosing;
    const again = await Store.open(dir);
    expect(await again.listMailboxes()).toEqual([]);
    expect((await again.stats()).messages).toBe(0);
    await again.close();
  });

  it('the newest batch whose blobs never became durable is cut on open (packs and journal sync in parallel)', async () => {
    const dir = tmpDir();
    let store = await Store.open(dir, packed({ create: true }));
    await store.createMailbox('INBOX');
    const a = await store.append('INBOX', msg('a'));
    const packPath = join(dir, 'packs', '00000001.pack');
    const sizeAfterA = statSync(packPath).size;
    const b = await store.appendBatch('INBOX', [{ bytes: msg('b1') }, { bytes: msg('b2') }]);
    await store.close();
    // A power cut that kept the journal's batch but not the pack's bytes: cut the pack back.
    const full = readFileSync(packPath);
    writeFileSync(packPath, full.subarray(0, sizeAfterA));
    // With the index holding the batch, it was acknowledged: kept (and reported as damage by fetch).
    store = await Store.open(dir);
    expect((await store.status('INBOX')).messages).toBe(3);
    await expectCode(store.fetch('INBOX', b[0].uid), 'CORRUPT');
    await store.close();
    // Without the index, nothing says it was acknowledged: the whole batch is cut, a copy quarantined.
    rmSync(join(dir, 'index'), { recursive: true });
    store = await Store.open(dir);
    expect(store.health.findings.join('\n')).toMatch(/never acknowledged/);
    expect((await store.status('INBOX')).messages).toBe(1);
    expect((await store.fetch('INBOX', a.uid)).equals(msg('a'))).toBe(true);
    expect(readdirSync(join(dir, 'quarantine')).some((n) => n.startsWith('journal-batch-'))).toBe(true);
    const c = await store.append('INBOX', msg('c'));
    expect((await store.fetch('INBOX', c.uid)).equals(msg('c'))).toBe(true);
    await store.close();
    store = await Store.open(dir);
    expect((await store.status('INBOX')).messages).toBe(2);
    expect(store.health.degraded).toBe(false);
    await store.close();
  });

  it('records of an incomplete batch (no batch-end marker) are never applied', async () => {
    const dir = tmpDir();
    let store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    await store.appendBatch('INBOX', [{ bytes: msg(1) }]);
    const segment = join(dir, 'journal', readdirSync(join(dir, 'journal')).find((n) => n.endsWith('.jnl'))!);
    // the last record so far (the segment may run on in preallocated zeros: its size says nothing)
    const lastBefore = readFileSync(segment).lastIndexOf('MSJR');
    // two mutations in one group commit: two records, the second carries the end marker
    await Promise.all([store.append('INBOX', msg(2)), store.append('INBOX', msg(3))]);
    await store.close();
    const bytes = readFileSync(segment);
    const before = bytes.indexOf('MSJR', lastBefore + 1);
    const second = bytes.indexOf('MSJR', before + 1);
    expect(second).toBeGreaterThan(before);
    writeFileSync(segment, bytes.subarray(0, second)); // the batch's last record was torn away
    rmSync(join(dir, 'index'), { recursive: true });
    store = await Store.open(dir);
    expect((await store.status('INBOX')).messages).toBe(1); // not 2: the batch is all or nothing
    await store.close();
  });

  it('streams big messages and enforces the size limit; empty messages are allowed', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true, messageBytesMax: 3 * 1024 * 1024 });
    await store.createMailbox('INBOX');
    const big = Buffer.alloc(2.5 * 1024 * 1024, 'x');
    const r = await store.append('INBOX', big);
    const chunks: Buffer[] = [];
    for await (const chunk of await store.fetchStream('INBOX', r.uid)) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).equals(big)).toBe(true);
    await expectCode(store.append('INBOX', Buffer.alloc(3 * 1024 * 1024 + 1)), 'TOO_LARGE');
    const empty = await store.append('INBOX', Buffer.alloc(0));
    expect((await store.fetch('INBOX', empty.uid)).length).toBe(0);
    await store.close();
  });

  it('refuses a size limit no message could be read back under (node reads at most 2^31 - 1 bytes at once), or none at all: INVALID at open, nothing held', async () => {
    const dir = tmpDir();
    await (await Store.open(dir, { create: true })).close();
    for (const bad of [2 ** 31, 4 * 1024 ** 3, Number.NaN, -1, 1.5, Infinity]) {
      await expectCode(Store.open(dir, { messageBytesMax: bad }), 'INVALID');
    }
    const store = await Store.open(dir, { messageBytesMax: limits.messageBytesSettingMax }); // the largest there is: the lock was let go
    await store.close();
  });

  it('refuses file bounds a store cannot keep: a journal segment or pack size that is no whole number of bytes (NaN once meant never rotated), a segment past what one read takes', async () => {
    const dir = tmpDir();
    await (await Store.open(dir, { create: true })).close();
    for (const bad of [Number.NaN, 0, -1, 1.5, 2 ** 31, Infinity]) await expectCode(Store.open(dir, { journalSegmentBytesMax: bad }), 'INVALID');
    for (const bad of [Number.NaN, 0, -1, 1.5, Infinity]) await expectCode(Store.open(dir, { packBytesMax: bad }), 'INVALID');
    const store = await Store.open(dir, { journalSegmentBytesMax: 64 * 1024, packBytesMax: 4096 });
    await store.close();
  });
});

describeEachFs('every error code', ({ Store }) => {
  it('NOT_FOUND, EXISTS, INVALID', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true });
    await expectCode(store.status('nope'), 'NOT_FOUND');
    await store.createMailbox('INBOX');
    await expectCode(store.fetch('INBOX', 5), 'NOT_FOUND');
    await expectCode(store.createMailbox('INBOX'), 'EXISTS');
    for (const bad of ['', '/a', 'a/', 'a//b', 'a\u0001b', 'x'.repeat(2000), 'a/*/b', 'a/../b']) {
      await expectCode(() => store.createMailbox(bad), 'INVALID');
    }
    await expectCode(() => store.append('INBOX', msg(1), { flags: ['\\Recent'] }), 'INVALID');
    await expectCode(() => store.append('INBOX', msg(1), { flags: ['bad flag'] }), 'INVALID');
    await expectCode(() => store.append('INBOX', msg(1), { internalDate: 'yesterday' }), 'INVALID');
    await expectCode(() => store.setFlags('INBOX', [0], { add: ['\\Seen'] }), 'INVALID');
    await store.close();
    await expectCode(Store.open(join(dir, 'missing')), 'NOT_FOUND');
  });

  it('LOCKED names the holder pid, in this process and from another process', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true });
    const e = await expectCode(Store.open(dir), 'LOCKED');
    expect(e.message).toContain(String(process.pid));
    await store.close();
    // another process holds it
    const child = spawn(process.execPath, ['-e', `
      const { Store } = await import(${JSON.stringify(new URL('../../dist/src/index.js', import.meta.url).href)});
      const s = await Store.open(${JSON.stringify(dir)}); console.log('open'); setTimeout(() => s.close(), 60000);
    `, '--input-type=module'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.on('data', () => resolve()));
    const e2 = await expectCode(Store.open(dir), 'LOCKED');
    expect(e2.message).toContain(String(child.pid));
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    // a stale lock of a dead process is taken over
    const again = await Store.open(dir);
    await again.close();
  });

  it('CORRUPT: a flipped byte in a pack is detected on fetch, never returned', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, packed({ create: true }));
    await store.createMailbox('INBOX');
    const body = Buffer.from('Subject: x\r\n\r\nUNIQUE-MARKER-12345 and more text\r\n');
    const r = await store.append('INBOX', body);
    const packPath = join(dir, 'packs', '00000001.pack');
    const pack = readFileSync(packPath);
    const at = pack.indexOf('UNIQUE-MARKER');
    pack[at] ^= 0x01;
    writeFileSync(packPath, pack);
    await internalsOf(store).packs.forgetReadHandles();
    await expectCode(store.fetch('INBOX', r.uid), 'CORRUPT');
    await store.close();
  });

  it('CORRUPT: a damaged index value is detected by its checksum', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    await store.append('INBOX', msg(1));
    const key = keys.name(['INBOX']);
    const raw = Buffer.from(await rawLevelOf(store).get(key));
    raw[raw.length - 1] ^= 0xff;
    await rawLevelOf(store).put(key, raw);
    await expectCode(store.status('INBOX'), 'CORRUPT');
    await store.close();
  });

  it('UNMOUNTED: STORE missing, packs/ moved away, foreign marker — nothing is created', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    await store.append('INBOX', msg(1));
    await store.close();
    const listing = () => JSON.stringify(walk(dir));
    renameSync(join(dir, 'packs'), join(dir, '..', `packs-away-${process.pid}`));
    let before = listing();
    await expectCode(Store.open(dir), 'UNMOUNTED');
    expect(listing()).toBe(before);
    mkdirSync(join(dir, 'packs')); // an empty mount point
    before = listing();
    await expectCode(Store.open(dir), 'UNMOUNTED');
    expect(listing()).toBe(before);
    rmSync(join(dir, 'packs'), { recursive: true });
    renameSync(join(dir, '..', `packs-away-${process.pid}`), join(dir, 'packs'));
    writeFileSync(join(dir, 'journal', 'STORE-ID'), 'some-other-store\n');
    await expectCode(Store.open(dir), 'UNMOUNTED');
    rmSync(join(dir, 'STORE'));
    before = listing();
    await expectCode(Store.open(dir), 'UNMOUNTED');
    expect(listing()).toBe(before);
  });

  it('NO_SPACE, ACCESS and IO from the disk fail the batch, lose nothing acknowledged, and the store goes on', async () => {
    const dir = tmpDir();
    const fs = new FaultFileSystem();
    let store = await Store.open(dir, packed({ create: true, fs }));
    await store.createMailbox('INBOX');
    const kept = await store.append('INBOX', msg('kept'));
    for (const [code, expected, where] of [['ENOSPC', 'NO_SPACE', 'packs'], ['ENOSPC', 'NO_SPACE', 'journal'], ['EACCES', 'ACCESS', 'journal'], ['EIO', 'IO', 'packs'], ['EROFS', 'ACCESS', 'journal']] as const) {
      const fired = fs.firedFaults().length;
      fs.injectAt((op) => op.kind === 'write' && op.path.includes(where), code);
      await expectCode(store.append('INBOX', msg(`lost-${code}-${where}`)), expected);
      expect(fs.firedFaults().length).toBe(fired + 1);
      const after = await store.append('INBOX', msg(`after-${code}-${where}`));
      expect(after.uid).toBeGreaterThan(kept.uid);
    }
    // a persistent failure (directory lost its write bit): new files cannot be created
    await store.close();
    store = await Store.open(dir, packed({ fs, packBytesMax: 1 })); // every batch needs a new pack
    await store.createMailbox('more');
    fs.failAll('EACCES', { pathPrefix: join(dir, 'packs'), ops: ['create'] });
    await expectCode(store.append('more', msg('x')), 'ACCESS');
    expect((await store.fetch('INBOX', kept.uid)).equals(msg('kept'))).toBe(true); // reads keep working
    fs.clear();
    await store.append('more', msg('x'));
    const status = await store.status('INBOX');
    await store.close();
    store = await Store.open(dir);
    expect(await store.status('INBOX')).toEqual(status);
    expect(store.health.degraded).toBe(false);
    for await (const m of store.messages('INBOX')) expect((await store.fetch('INBOX', m.uid)).toString()).toMatch(/kept|after/);
    await store.close();
  });

  it('CLOSED after close', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true });
    await store.close();
    await expectCode(() => store.createMailbox('x'), 'CLOSED');
  });

  it('a read under way when the store closes (a daemon stopping under its clients) is UNAVAILABLE (retry), not an I/O error', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    await store.createMailbox('INBOX');
    await store.appendBatch('INBOX', Array.from({ length: 300 }, (_, i) => ({ bytes: Buffer.from(`Subject: ${i}\r\n\r\nbody\r\n`) })));
    const listing = store.messages('INBOX')[Symbol.asyncIterator]();
    expect((await listing.next()).value.uid).toBe(1); // its index iterator is open now
    await store.close();
    await expectCode(async () => { while (!(await listing.next()).done); }, 'UNAVAILABLE');
  });
});

describe.skipIf(!haveCorpora)('real mail', () => {
  it('every message in ../shared/corpora goes in and comes back byte-exact', async () => {
    const files = walk(corporaDir).filter((f) => !f.endsWith('README.md'));
    expect(files.length).toBeGreaterThan(100);
    const dir = tmpDir();
    let store = await Store.open(dir, { create: true });
    await store.createMailbox('corpus');
    const uids = new Map<string, number>();
    for (let i = 0; i < files.length; i += 100) {
      const chunk = files.slice(i, i + 100);
      const results = await store.appendBatch('corpus', chunk.map((f) => ({ bytes: readFileSync(f) })));
      chunk.forEach((f, k) => uids.set(f, results[k].uid));
    }
    await store.close();
    store = await Store.open(dir);
    for (const [file, uid] of uids) {
      expect((await store.fetch('corpus', uid)).equals(readFileSync(file)), relative(corporaDir, file)).toBe(true);
    }
    await store.close();
  });
});
if (!haveCorpora) console.warn(`skipping real-mail tests: ${corporaDir} is absent`);

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out.sort();
}

describeEachFs('index probe', ({ Store }) => {
  it('after a crash (stale LOCK), an index that fails to open in a child process is set aside and rebuilt', async () => {
    const dir = tmpDir();
    let store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    await store.append('INBOX', msg(1));
    await store.close();
    writeFileSync(join(dir, 'LOCK'), '999999\n'); // a previous owner that died
    writeFileSync(join(dir, 'index', 'CURRENT'), 'MANIFEST-999999\n'); // an index LevelDB cannot open
    store = await Store.open(dir);
    expect(store.health.rebuilt).toMatch(/failed its probe/);
    expect((await store.fetch('INBOX', 1)).equals(msg(1))).toBe(true);
    expect(readdirSync(join(dir, 'quarantine')).some((n) => n.startsWith('index-damaged'))).toBe(true);
    await store.close();
    // a healthy index passes the probe and is kept
    store = await Store.open(dir, { probeIndex: 'always' });
    expect(store.health.rebuilt).toBeUndefined();
    await store.close();
  });
});

describe('single writer', () => {
  it('a second close() waits for the first: the store is closed (and can be opened again) once either returns', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    await store.append('INBOX', msg('kept'));
    let firstDone = false;
    const first = store.close().then(() => { firstDone = true; });
    await store.close(); // another shutdown path of the same server
    expect(firstDone, 'the second close() returned while the first was still closing').toBe(true);
    const again = await Store.open(dir, { lockWaitMs: 0 });
    expect((await again.fetch('INBOX', 1)).equals(msg('kept'))).toBe(true);
    await again.close();
    await first;
  });

  it('after a crash, of several processes opening at once exactly one gets the store; the others get LOCKED', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    await store.append('INBOX', msg(1));
    await store.close();
    writeFileSync(join(dir, 'LOCK'), '999999\n'); // the previous owner died
    const url = new URL('../../dist/src/index.js', import.meta.url).href;
    const script = `
      const { Store } = await import(${JSON.stringify(url)});
      try {
        const s = await Store.open(${JSON.stringify(dir)});
        console.log('open');
        await new Promise((r) => setTimeout(r, 1500));
        await s.close();
      } catch (e) { console.log(e.code); }`;
    const children = Array.from({ length: 4 }, () => spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] }));
    const outputs = await Promise.all(children.map((child) => new Promise<string>((resolve) => {
      let out = '';
      child.stdout.on('data', (d) => { out += d; });
      child.on('close', () => resolve(out.trim())); // 'close': all its output read, which 'exit' may precede
    })));
    expect(outputs.filter((o) => o === 'open').length, outputs.join(',')).toBe(1);
    expect(outputs.filter((o) => o === 'LOCKED').length, outputs.join(',')).toBe(3);
    const again = await Store.open(dir);
    expect((await again.fetch('INBOX', 1)).equals(msg(1))).toBe(true);
    expect(again.health.degraded).toBe(false);
    await again.close();
  });
});
