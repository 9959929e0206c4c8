// Mail for a user XFER moved away must not bounce: the source keeps where the user went (moved.ts),
// LMTP answers 451 4.2.1 naming the new host (a delivery that waited out the XFER's fence too) so
// the MTA keeps the mail queued until its routing changes, and 550 5.1.6 past
// limits.xferMovedTempfailMs by the wall clock and by the process's monotonic clock since it first
// saw the mark; append --sysexits exits 75 then 67. The mark goes once the user exists here again,
// and by hand.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { startPrimary } from '../../src/replication/primary.js';
import { xferUser } from '../../src/replication/xfer.js';
import { startLmtp, type LmtpServer } from '../../src/daemon/lmtp.js';
import { fromWireError, toWireError } from '../../src/daemon/protocol.js';
import { MailstoreError } from '../../src/errors.js';
import { limits } from '../../src/limits.js';
import { tmpDir } from '../helpers/tmp.js';
import { converse, type Conversation } from '../daemon/lmtp-client.js';
import { json, ok, run } from '../cli/in-process.js';
import { keyFile, msg, quiet, startPair, until } from './helpers.js';
import { connect } from '../../src/replication/transport.js';
import { readKeyFile } from '../../src/replication/key.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { movedError, type MovedMarker } from '../../src/store/moved.js';
import { sysexitFor } from '../../src/cli/sysexits.js';
import { keys } from '../../src/keys/index-keys.js';

const closing: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of closing.splice(0).reverse()) await close();
});

/** Store a with user bob (one message) and LMTP on it; store b an XFER target listening at `to`. */
async function setUp() {
  const key = keyFile();
  const a = await Store.open(tmpDir('moved-a'), { create: true });
  closing.push(() => a.close());
  const b = await Store.open(tmpDir('moved-b'), { create: true });
  closing.push(() => b.close());
  const target = await startPrimary(b, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
  closing.push(() => target.close());
  const to = `127.0.0.1:${(await target.status()).port}`;
  await a.createMailbox('user/bob/INBOX', { owner: 'bob' });
  await a.append('user/bob/INBOX', msg(1));
  const server: LmtpServer = await startLmtp(a, { listen: '127.0.0.1:0', hostname: 'test.example' });
  closing.push(() => server.close());
  const c = await converse({ port: Number(server.address.split(':')[1]) });
  closing.push(async () => c.socket.destroy());
  c.send('LHLO client.example\r\n');
  await c.replies(1);
  return { key, a, b, to, c };
}

/** MAIL and RCPT for `to`: the RCPT reply. */
async function rcpt(c: Conversation, to: string): Promise<string> {
  c.send(`MAIL FROM:<s@example.org>\r\nRCPT TO:<${to}>\r\n`);
  const [, reply] = await c.replies(2);
  if (!reply.startsWith('250')) {
    c.send('RSET\r\n');
    await c.replies(1);
  }
  return reply;
}

describe('mail for a user XFER moved away', () => {
  it('is answered 451 4.2.1 naming the new host (550 5.1.1 before: bounced), 550 5.1.6 past the window; a create here clears it', async () => {
    const { key, a, b, to, c } = await setUp();
    await xferUser(a, { user: 'bob', to, keyFile: key, log: quiet });
    expect(await b.status('user/bob/INBOX')).toMatchObject({ messages: 1 });
    await expect(a.status('user/bob/INBOX')).rejects.toMatchObject({ code: 'MOVED', moved: { user: 'bob', to, permanent: false } });
    expect(await rcpt(c, 'bob@example.org')).toBe(`451 4.2.1 user bob moved to ${to} by xfer; route its mail there`);
    expect(await rcpt(c, 'BOB@example.org')).toMatch(/^451 4\.2\.1 /);
    expect(await rcpt(c, 'nobody@example.org')).toBe('550 5.1.1 no such mailbox'); // never here: as before
    expect(await a.movedUsers()).toEqual([{ user: 'bob', to, at: expect.any(Number) }]);

    // past the window (Postfix's maximal_queue_lifetime) by the wall clock and by this process's
    // monotonic clock: permanent, and it says why
    await a.replication().commitMeta('moved/bob', { to, at: Date.now() - limits.xferMovedTempfailMs - 60_000 });
    expect(await rcpt(c, 'bob@example.org')).toMatch(/^451 4\.2\.1 /); // first seen now: the wall clock alone is not trusted
    // the store's monotonic clock (src/monotonic.ts) reads process.hrtime()
    const hrtime = process.hrtime.bind(process);
    const aheadSeconds = Math.ceil((limits.xferMovedTempfailMs + 60_000) / 1000);
    const later = vi.spyOn(process, 'hrtime').mockImplementation(Object.assign(() => { const [s, ns] = hrtime(); return [s + aheadSeconds, ns] as [number, number]; }, { bigint: process.hrtime.bigint }));
    try {
      expect(await rcpt(c, 'bob@example.org')).toBe(`550 5.1.6 user bob moved to ${to}`);
    } finally {
      later.mockRestore();
    }

    // the user exists here again: mail is delivered, the mark is gone
    await a.createMailbox('user/bob/INBOX');
    expect(await a.movedUsers()).toEqual([]);
    expect(await rcpt(c, 'bob@example.org')).toBe('250 2.1.5 Accepted');
    c.send('DATA\r\n');
    await c.replies(1);
    c.send('Subject: x\r\n\r\nbody\r\n.\r\n');
    expect(await c.replies(1)).toEqual(['250 2.0.0 delivered to user/bob/INBOX uid 1']);
  }, 30_000);

  it('a delivery that passed RCPT and waited out the fence gets 451 4.2.1, not 550: nothing bounced, nothing stored here', async () => {
    const { key, a, b, to, c } = await setUp();
    c.send('MAIL FROM:<s@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n');
    expect(await c.replies(3)).toEqual(['250 2.1.0 Accepted', '250 2.1.5 Accepted', '354 End data with <CR><LF>.<CR><LF>']);
    // the fence is set in the same turn as this line is logged: the message comes in under it
    const log = (line: string) => { if (line.includes('fencing writes')) c.send('Subject: x\r\n\r\nbody\r\n.\r\n'); };
    await xferUser(a, { user: 'bob', to, keyFile: key, log });
    expect(await c.replies(1)).toEqual([`451 4.2.1 user bob moved to ${to} by xfer; route its mail there`]);
    expect(await b.status('user/bob/INBOX')).toMatchObject({ messages: 1 });
    expect(await a.listMailboxes()).toEqual([]);
  }, 30_000);

  it('an XFER resumed after its switch (by a mailstore that wrote no mark) marks the user when it finishes the removal', async () => {
    const { key, a, to, c } = await setUp();
    await a.replication().commitMeta('xfer/bob', { to, phase: 'switched', mailboxes: ['user/bob/INBOX'], quotaRoots: true });
    expect((await xferUser(a, { user: 'bob', to, keyFile: key, log: quiet })).resumedAfterSwitch).toBe(true);
    expect(await rcpt(c, 'bob@example.org')).toMatch(/^451 4\.2\.1 user bob moved to /);
  }, 30_000);

  it('a replica holds the mark as its primary does (a promoted replica answers the same), and its clearing', async () => {
    const pair = await startPair({ fill: async (store) => { await store.createMailbox('user/bob/INBOX'); await store.append('user/bob/INBOX', msg(1)); } });
    closing.push(() => pair.close());
    const b = await Store.open(tmpDir('moved-b'), { create: true });
    closing.push(() => b.close());
    const target = await startPrimary(b, { listen: '127.0.0.1:0', keyFile: pair.key, log: quiet });
    closing.push(() => target.close());
    const to = `127.0.0.1:${(await target.status()).port}`;
    await xferUser(pair.primaryStore, { user: 'bob', to, keyFile: pair.key, log: quiet });
    const caughtUp = () => until(() => pair.replica.store.changes.lastSeq === pair.primaryStore.changes.lastSeq, 15_000, 'the replica caught up');
    await caughtUp();
    await expect(pair.replica.store.status('user/bob/INBOX')).rejects.toMatchObject({ code: 'MOVED', moved: { to, permanent: false } });
    expect(await pair.replica.store.movedUsers()).toEqual(await pair.primaryStore.movedUsers());
    await pair.primaryStore.createMailbox('user/bob/Archive');
    await caughtUp();
    expect(await pair.replica.store.movedUsers()).toEqual([]);
    await pair.expectIdentical();
  }, 30_000);

  it('an XFER back clears the mark here and leaves one at the store the user left', async () => {
    const { key, a, b, to, c } = await setUp();
    await xferUser(a, { user: 'bob', to, keyFile: key, log: quiet });
    const back = await startPrimary(a, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    closing.push(() => back.close());
    const toA = `127.0.0.1:${(await back.status()).port}`;
    await xferUser(b, { user: 'bob', to: toA, keyFile: key, log: quiet });
    expect(await a.movedUsers()).toEqual([]);
    expect(await b.movedUsers()).toEqual([{ user: 'bob', to: toA, at: expect.any(Number) }]);
    expect(await rcpt(c, 'bob@example.org')).toBe('250 2.1.5 Accepted');
  }, 30_000);

  it('an XFER back that is rolled back puts the mark back (its create had cleared it: the user gone, their mail here bounced)', async () => {
    const { key, a, c } = await setUp();
    await a.deleteMailbox('user/bob/INBOX');
    const marker = { to: 'mail2.example:7100', at: Date.now() };
    await a.replication().commitMeta('moved/bob', marker);
    const listener = await startPrimary(a, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    closing.push(() => listener.close());
    const connection = await connect(`127.0.0.1:${(await listener.status()).port}`, await readKeyFile(nodeFileSystem, key));
    try {
      await connection.send({ t: 'hello', kind: 'xfer', epoch: 0 });
      await connection.expect('welcome', 5000);
      const id = 'b1445cf854854288bb46f48aa6be0101';
      await connection.send({ t: 'xfer.mailbox', mailbox: { id, name: ['user', 'bob', 'INBOX'], uidValidity: 7, uidNext: 1, acl: {}, created: 1, owner: 'bob', highestModseq: 0 } });
      expect(await connection.next(5000)).toMatchObject({ t: 'xfer.mailbox' });
      expect(await a.movedUsers()).toEqual([]); // the user is (being) copied here
      await connection.send({ t: 'xfer.abort', ids: [id] });
      expect(await connection.next(5000)).toMatchObject({ t: 'xfer.abort' });
    } finally {
      connection.close();
    }
    expect(await a.listMailboxes()).toEqual([]);
    expect(await a.movedUsers()).toEqual([{ user: 'bob', ...marker }]);
    expect(await rcpt(c, 'bob@example.org')).toBe('451 4.2.1 user bob moved to mail2.example:7100 by xfer; route its mail there');
  }, 30_000);

  it('the switch to permanent needs the window by the wall clock and by this process\'s monotonic clock: a wall clock stepped forward by days keeps 451 (was 550 5.1.6 at once, mail in flight bounced for good); one stepped back keeps it at most twice the window', () => {
    const day = 24 * 60 * 60 * 1000;
    const windowMs = limits.xferMovedTempfailMs;
    const at = Date.UTC(2026, 0, 1);
    const marker: MovedMarker = { to: 'mail2.example', at };
    const markKey = keys.meta('moved/bob').toString('hex');
    const index = () => ({ getNow: <T>(key: Buffer) => (key.toString('hex') === markKey ? marker as T : undefined) });
    const permanent = (db: ReturnType<typeof index>, wallMs: number, monotonicMs: number) => movedError(db, 'user/bob/INBOX', wallMs, monotonicMs)!.moved!.permanent;
    // the wall clock stepped forward 30 days an hour after the switch: still temporary
    const stepped = index();
    expect(permanent(stepped, at + 60_000, 1000)).toBe(false);
    expect(permanent(stepped, at + 30 * day, 1000 + 60 * 60_000)).toBe(false);
    expect(permanent(stepped, at + 30 * day + windowMs, 1000 + windowMs)).toBe(false); // seen for exactly the window: not past it
    expect(permanent(stepped, at + 30 * day + windowMs, 1000 + windowMs + 1)).toBe(true);
    // both clocks past the window: permanent, as before
    const steady = index();
    expect(permanent(steady, at + 60_000, 0)).toBe(false);
    expect(permanent(steady, at + windowMs + 2 * 60_000, windowMs + 60_001)).toBe(true);
    // a process that first sees an old mark (a restart) counts the window anew
    const restarted = index();
    expect(permanent(restarted, at + 20 * day, 5)).toBe(false);
    expect(permanent(restarted, at + 20 * day + windowMs, 5 + windowMs + 1)).toBe(true);
    // the wall clock stepped back a year: temporary past the window, permanent past twice the window
    const back = index();
    expect(permanent(back, at - 365 * day, 0)).toBe(false);
    expect(permanent(back, at - 365 * day + windowMs + 60_000, windowMs + 60_000)).toBe(false);
    expect(permanent(back, at - 365 * day + 2 * windowMs + 60_000, 2 * windowMs + 60_000)).toBe(true);
    // a new XFER's mark for the same user is seen anew
    marker.at = at + day;
    expect(permanent(back, at - 365 * day + 3 * windowMs, 3 * windowMs)).toBe(false);
  });

  it('a MOVED error crosses the daemon socket with where and whether permanent', () => {
    const error = new MailstoreError('MOVED', 'user bob moved to h:1', { path: 'user/bob/INBOX', moved: { user: 'bob', to: 'h:1', permanent: true } });
    expect(fromWireError(toWireError(error))).toMatchObject({ code: 'MOVED', path: 'user/bob/INBOX', moved: { user: 'bob', to: 'h:1', permanent: true } });
  });
});

describe('the CLI for a moved user', () => {
  it('append --sysexits exits 75 (EX_TEMPFAIL) within the window, and past it by the wall clock alone (a process that just opened the store has not seen the mark that long); user moved lists it, forget-moved removes it', async () => {
    const dir = tmpDir('moved-cli');
    const store = join(dir, 'store');
    const opened = await Store.open(store, { create: true });
    await opened.replication().commitMeta('moved/bob', { to: 'mail2.example:2500', at: Date.now() });
    await opened.close();
    const input = msg(1);
    const temporary = await run(['append', 'user/bob/INBOX', '-', '--sysexits'], { store, input });
    expect(temporary.code, temporary.stderr).toBe(75);
    expect(temporary.stderr).toMatch(/^mailstore: MOVED: user bob moved to mail2\.example:2500/);
    expect((await run(['append', 'user/bob/INBOX', '-'], { store, input })).code).toBe(4); // without: the usual table
    expect(await json(['user', 'moved', '--json'], { store })).toEqual([{ user: 'bob', to: 'mail2.example:2500', at: expect.any(String) }]);

    const old = await Store.open(store);
    await old.replication().commitMeta('moved/bob', { to: 'mail2.example:2500', at: Date.now() - limits.xferMovedTempfailMs - 60_000 });
    await old.close();
    // past the window by the wall clock only: a process that opened the store just now has not seen
    // the mark for the window on its monotonic clock, so the wall clock alone cannot bounce the mail
    expect((await run(['append', 'user/bob/INBOX', '-', '--sysexits'], { store, input })).code).toBe(75);
    expect(sysexitFor(new MailstoreError('MOVED', 'user bob moved to mail2.example:2500', { moved: { user: 'bob', to: 'mail2.example:2500', permanent: true } }), 'append', undefined)).toBe(67); // once it has

    expect(await ok(['user', 'forget-moved', 'bob'], { store })).toMatch(/no longer marked as moved to mail2\.example:2500/);
    expect(await json(['user', 'moved', '--json'], { store })).toEqual([]);
    expect((await run(['user', 'forget-moved', 'bob'], { store })).code).toBe(4);
    const gone = await run(['append', 'user/bob/INBOX', '-', '--sysexits'], { store, input });
    expect(gone.code).toBe(67);
    expect(gone.stderr).toMatch(/NOT_FOUND/);
  }, 30_000);
  it('a mark an older mailstore kept beside the user\'s new mailboxes (its apply does not clear it) is not taken: NOT_FOUND, not MOVED; not listed', async () => {
    const { a, c } = await setUp();
    // the state a store of session 35 leaves (a replica of it promoted, or a downgrade): user/bob is here, the mark too
    await a.replication().commitMeta('moved/bob', { to: 'mail2.example:7100', at: Date.now() });
    await expect(a.status('user/bob/Nope')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(a.append('user/bob/Nope', msg(2))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await a.movedUsers()).toEqual([]);
    expect(await rcpt(c, 'bob@example.org')).toBe('250 2.1.5 Accepted');
    expect((await a.status('user/bob/INBOX')).messages).toBe(1); // nothing lost, nothing added
  }, 30_000);
});
