// LMTP delivery (src/daemon/lmtp.ts) over real sockets: one reply per recipient after DATA, 250
// only after the append resolved, the RFC 2033/3463 replies for each failure, and hostile input
// (pipelining, bare LF, NUL, long lines, a DATA cut off before its final dot). swaks, a real
// client from Debian, delivers too when it is installed.
import { spawnSync } from 'node:child_process';
import { lstatSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startLmtp, mailboxFor, type LmtpLogEntry, type LmtpServer, type LmtpStore } from '../../src/daemon/lmtp.js';
import { MailstoreError } from '../../src/errors.js';
import { setQuota } from '../../src/store/quota.js';
import { lmtpLimits } from '../../src/limits.js';
import { Store } from '../../src/store/store.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { tmpDir } from '../helpers/tmp.js';
import { converse } from './lmtp-client.js';
import { run, which } from './tools.js';

const open: { server?: LmtpServer; store?: Store }[] = [];
afterEach(async () => {
  for (const { server, store } of open.splice(0)) {
    await server?.close();
    await store?.close();
  }
});

async function setup(options: { fs?: FaultFileSystem; messageBytesMax?: number; store?: (s: Store) => LmtpStore } = {}) {
  const store = await Store.open(tmpDir('lmtp'), { create: true, fs: options.fs, messageBytesMax: options.messageBytesMax });
  for (const user of ['alice', 'bob']) await store.createMailbox(`user/${user}/INBOX`);
  const log: LmtpLogEntry[] = [];
  const server = await startLmtp(options.store ? options.store(store) : store, {
    listen: '127.0.0.1:0', messageBytesMax: options.messageBytesMax, log: (entry) => log.push(entry), hostname: 'test.example',
  });
  open.push({ server, store });
  const port = Number(server.address.split(':')[1]);
  return { store, server, port, log };
}

const message = (tag: string, extra = '') => Buffer.from(`From: a@example.org\r\nSubject: ${tag}\r\nMessage-ID: <${tag}@example.org>\r\n\r\nbody of ${tag}\r\n${extra}`);
const envelope = (from: string, to: string[]) => `LHLO client.example\r\nMAIL FROM:<${from}>\r\n${to.map((t) => `RCPT TO:<${t}>\r\n`).join('')}`;

async function messages(store: Store, user: string): Promise<number> {
  return (await store.status(`user/${user}/INBOX`)).messages;
}

describe('LMTP delivery', () => {
  it('answers each accepted recipient after DATA, stores one body for all of them, and keeps the envelope sender', async () => {
    const { store, port, log } = await setup();
    const c = await converse({ port });
    c.send(envelope('sender@example.org', ['alice@example.org', 'bob@example.org', 'Alice@Other.Example', 'nobody@example.org']));
    const rcpt = await c.replies(6);
    expect(rcpt[0]).toMatch(/^250 /); // LHLO
    expect(rcpt.slice(1, 5)).toEqual(['250 2.1.0 Accepted', '250 2.1.5 Accepted', '250 2.1.5 Accepted', '250 2.1.5 Accepted']);
    expect(rcpt[5]).toBe('550 5.1.1 no such mailbox');
    c.send('DATA\r\n');
    expect((await c.replies(1))[0]).toMatch(/^354 /);
    const bytes = message('one');
    c.send(Buffer.concat([bytes, Buffer.from('.\r\n')]));
    const replies = await c.replies(3); // three accepted recipients, three replies
    expect(replies).toEqual([
      '250 2.0.0 delivered to user/alice/INBOX uid 1', '250 2.0.0 delivered to user/bob/INBOX uid 1', '250 2.0.0 delivered to user/alice/INBOX uid 1',
    ]);
    expect(await messages(store, 'alice')).toBe(1); // Alice@Other.Example is the same mailbox: one copy
    expect((await store.fetch('user/bob/INBOX', 1)).equals(bytes)).toBe(true);
    expect((await store.stats()).blobs).toBe(1);
    expect((await store.messageInfo('user/alice/INBOX', 1)).envelopeFrom).toBe('sender@example.org');
    // the null sender is kept as mbox From_ lines write it
    c.send(`MAIL FROM:<>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n`);
    await c.replies(3);
    c.send(Buffer.concat([message('bounce'), Buffer.from('.\r\n')]));
    expect(await c.replies(1)).toEqual(['250 2.0.0 delivered to user/bob/INBOX uid 2']);
    expect((await store.messageInfo('user/bob/INBOX', 2)).envelopeFrom).toBe('MAILER-DAEMON');
    expect(log.filter((e) => e.event === 'lmtp.delivered')).toHaveLength(4);
    expect(log.find((e) => e.event === 'lmtp.refused')).toMatchObject({ to: 'nobody@example.org', reply: '550 5.1.1 no such mailbox' });
  });

  it('keeps an envelope sender of an international domain in the ASCII form it came in (was: smtp-server turned it into Unicode and the sender was dropped)', async () => {
    const { store, port } = await setup();
    const c = await converse({ port });
    c.send('LHLO client.example\r\n');
    await c.replies(1);
    for (const [from, kept] of [['bob@xn--bcher-kva.example', 'bob@xn--bcher-kva.example'], ['bob@b\u00fccher.example', 'bob@xn--bcher-kva.example'], ['j\u00f6ran@example.org', undefined]]) {
      c.send(Buffer.from(`MAIL FROM:<${from}> SMTPUTF8\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n`));
      await c.replies(3);
      c.send(Buffer.concat([message('idn'), Buffer.from('.\r\n')]));
      const [reply] = await c.replies(1);
      const uid = Number(/uid (\d+)$/.exec(reply)![1]);
      expect((await store.messageInfo('user/alice/INBOX', uid)).envelopeFrom, from).toBe(kept);
    }
  });

  it('keeps an envelope sender of an ASCII domain as it came: not lowercased, a numeric one not read as an IPv4 address (was: bob@1.2.3 kept as bob@1.2.0.3)', async () => {
    const { store, port } = await setup();
    const c = await converse({ port });
    c.send('LHLO client.example\r\n');
    await c.replies(1);
    for (const from of ['bob@Example.ORG', 'bob@1.2.3', 'bounces+123@0x7f.example']) {
      c.send(`MAIL FROM:<${from}>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n`);
      await c.replies(3);
      c.send(Buffer.concat([message('ascii'), Buffer.from('.\r\n')]));
      const [reply] = await c.replies(1);
      const uid = Number(/uid (\d+)$/.exec(reply)![1]);
      expect((await store.messageInfo('user/alice/INBOX', uid)).envelopeFrom, from).toBe(from);
    }
  });

  it('sends 250 only once the append has resolved (the journal is fsynced)', async () => {
    const events: string[] = [];
    const slow = (store: Store): LmtpStore => ({
      listMailboxes: (options) => store.listMailboxes(options),
      status: (name) => store.status(name),
      append: async (name, bytes, options) => {
        await new Promise((resolve) => setTimeout(resolve, 300));
        const result = await store.append(name, bytes, options);
        events.push('append resolved');
        return result;
      },
    });
    const { port } = await setup({ store: slow });
    const c = await converse({ port });
    c.send(envelope('s@example.org', ['alice@example.org']) + 'DATA\r\n');
    await c.replies(4);
    c.send(Buffer.concat([message('slow'), Buffer.from('.\r\n')]));
    c.socket.on('data', (chunk: Buffer) => { if (chunk.toString().startsWith('250')) events.push('250 received'); });
    await c.replies(1);
    expect(events).toEqual(['append resolved', '250 received']);
  });

  it('takes pipelined transactions in order and answers each in order', async () => {
    const { store, port } = await setup();
    const c = await converse({ port });
    // everything in one write, bodies included, without waiting for any reply
    const one = Buffer.concat([Buffer.from(envelope('s@example.org', ['alice@example.org']) + 'DATA\r\n'), message('p1'), Buffer.from('.\r\n')]);
    const two = Buffer.concat([Buffer.from('MAIL FROM:<s@example.org>\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n'), message('p2'), Buffer.from('.\r\nQUIT\r\n')]);
    c.send(Buffer.concat([one, two]));
    const replies = await c.replies(12); // LHLO, MAIL, RCPT, 354, 250; MAIL, RCPT, RCPT, 354, 250, 250; QUIT
    expect(replies.slice(4, 5)).toEqual(['250 2.0.0 delivered to user/alice/INBOX uid 1']);
    expect(replies.slice(9, 11)).toEqual(['250 2.0.0 delivered to user/bob/INBOX uid 1', '250 2.0.0 delivered to user/alice/INBOX uid 2']);
    expect(replies[11]).toMatch(/^221 /);
    expect((await store.fetch('user/alice/INBOX', 2)).equals(message('p2'))).toBe(true);
  });

  it('answers pipelined MAIL, RCPT and DATA in one write (RFC 2920), and the final reply without waiting', async () => {
    const { store, port } = await setup();
    const c = await converse({ port });
    c.send('LHLO client.example\r\n');
    await c.replies(1);
    const writes: number[] = []; // reply chunks per write the server's socket makes
    const counted = (name: '_write' | '_writev') => {
      const original = Socket.prototype[name] as (...args: unknown[]) => void;
      return vi.spyOn(Socket.prototype, name).mockImplementation(function (this: Socket, ...args: unknown[]) {
        // only the server's end of this conversation (the test runner writes to sockets too)
        if (this.remotePort === c.socket.localPort && this.localPort === port) writes.push(name === '_writev' ? (args[0] as unknown[]).length : 1);
        return original.apply(this, args);
      } as never);
    };
    const spies = [counted('_write'), counted('_writev')];
    try {
      c.send('MAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n');
      expect(await c.replies(3)).toEqual(['250 2.1.0 Accepted', '250 2.1.5 Accepted', expect.stringMatching(/^354 /)]);
      expect(writes).toEqual([3]); // one write carrying the three replies, not three writes
      c.send(Buffer.concat([message('grouped'), Buffer.from('.\r\n')]));
      expect(await c.replies(1)).toEqual(['250 2.0.0 delivered to user/alice/INBOX uid 1']);
      expect(writes).toEqual([3, 1]);
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
    expect(await messages(store, 'alice')).toBe(1);
  });

  it('sends the final reply before anything else the delivery does (its log line waits for it)', async () => {
    const { store, port, log } = await setup();
    const c = await converse({ port });
    c.send(envelope('s@example.org', ['alice@example.org']) + 'DATA\r\n');
    await c.replies(4);
    // what the server's socket hands to the kernel, each time with the delivery log lines made so far
    const written: { text: string; logged: number }[] = [];
    const spied = (name: '_write' | '_writev') => {
      const original = Socket.prototype[name] as (...args: unknown[]) => void;
      return vi.spyOn(Socket.prototype, name).mockImplementation(function (this: Socket, ...args: unknown[]) {
        if (this.remotePort === c.socket.localPort && this.localPort === port) {
          const chunks = name === '_writev' ? (args[0] as { chunk: Buffer | string }[]).map((w) => w.chunk) : [args[0] as Buffer | string];
          written.push({ text: chunks.map(String).join(''), logged: log.filter((e) => e.event === 'lmtp.delivered').length });
        }
        return original.apply(this, args);
      } as never);
    };
    const spies = [spied('_write'), spied('_writev')];
    try {
      // a lone delivery is flushed in this thread: it completes in the turn its final dot came in
      c.send(Buffer.concat([message('first'), Buffer.from('.\r\n')]));
      expect(await c.replies(1)).toEqual(['250 2.0.0 delivered to user/alice/INBOX uid 1']);
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
    // the reply was handed to the kernel before the delivery was logged (the turn's cork held it behind the log line before)
    expect(written).toEqual([{ text: '250 2.0.0 delivered to user/alice/INBOX uid 1\r\n', logged: 0 }]);
    expect(log.filter((e) => e.event === 'lmtp.delivered').map((e) => e.to)).toEqual(['alice@example.org']);
    expect(await messages(store, 'alice')).toBe(1);
  });

  it('stores bare LF, NUL bytes and lines over 1,000 bytes exactly as sent (dot-unstuffed)', async () => {
    const { store, port } = await setup();
    const c = await converse({ port });
    const body = Buffer.concat([
      Buffer.from('Subject: hostile\nX-Bare: lf only\n\nline\n.not the end\nnul:\0\0:end\r\n'),
      Buffer.from(`${'x'.repeat(5000)}\r\n`),
      Buffer.from('..stuffed\r\n'),
    ]);
    c.send(envelope('s@example.org', ['alice@example.org']) + 'DATA\r\n');
    await c.replies(4);
    c.send(Buffer.concat([body, Buffer.from('.\r\n')]));
    expect(await c.replies(1)).toEqual(['250 2.0.0 delivered to user/alice/INBOX uid 1']);
    const stored = await store.fetch('user/alice/INBOX', 1);
    expect(stored.equals(Buffer.concat([body.subarray(0, body.length - 11), Buffer.from('.stuffed\r\n')]))).toBe(true);
  });

  it('stores a message that came in many reads, and one that came in one read with the next transaction behind it, byte for byte', async () => {
    const { store, port } = await setup();
    const c = await converse({ port });
    // ~1 MiB written in pieces with pauses: many reads, their chunks joined
    const line = (n: number) => `${n.toString().padStart(7, '0')} ${'y'.repeat(70)}\r\n`;
    const big = Buffer.from(`Subject: big\r\n\r\n${Array.from({ length: 13_000 }, (_, n) => line(n)).join('')}`);
    c.send(envelope('s@example.org', ['alice@example.org']) + 'DATA\r\n');
    await c.replies(4);
    for (let at = 0; at < big.length; at += 100_000) {
      c.send(big.subarray(at, at + 100_000));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    c.send('.\r\n');
    expect(await c.replies(1)).toEqual(['250 2.0.0 delivered to user/alice/INBOX uid 1']);
    // one write: this body, its final dot and a whole pipelined transaction after it
    const small = message('small');
    c.send('MAIL FROM:<s@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n');
    await c.replies(3);
    c.send(Buffer.concat([small, Buffer.from('.\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n')]));
    expect(await c.replies(4)).toEqual(['250 2.0.0 delivered to user/bob/INBOX uid 1', '250 2.1.0 Accepted', '250 2.1.5 Accepted', expect.stringMatching(/^354 /)]);
    c.send(Buffer.concat([message('after'), Buffer.from('.\r\n')]));
    expect(await c.replies(1)).toEqual(['250 2.0.0 delivered to user/bob/INBOX uid 2']);
    expect((await store.fetch('user/alice/INBOX', 1)).equals(big)).toBe(true);
    expect((await store.fetch('user/bob/INBOX', 1)).equals(small)).toBe(true);
    expect((await store.fetch('user/bob/INBOX', 2)).equals(message('after'))).toBe(true);
  });

  it('ends DATA only at CRLF.CRLF: a bare-LF dot cannot smuggle a second transaction', async () => {
    const { store, port } = await setup();
    const c = await converse({ port });
    c.send(envelope('s@example.org', ['alice@example.org']) + 'DATA\r\n');
    await c.replies(4);
    const smuggled = 'Subject: outer\r\n\r\ntext\n.\nMAIL FROM:<evil@example.org>\nRCPT TO:<bob@example.org>\nDATA\nSubject: inner\n\n\r.\r\n';
    c.send(`${smuggled}\r\n.\r\n`);
    expect(await c.replies(1)).toEqual(['250 2.0.0 delivered to user/alice/INBOX uid 1']);
    expect((await store.fetch('user/alice/INBOX', 1)).toString('latin1')).toBe(`${smuggled}\r\n`);
    expect(await messages(store, 'bob')).toBe(0);
  });

  it('refuses a command line far over 1,000 bytes and goes on serving', async () => {
    const { store, port } = await setup();
    const c = await converse({ port });
    c.send(`LHLO client.example\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<${'a'.repeat(100_000)}@example.org>\r\n`);
    const replies = await c.replies(3).catch(() => []);
    // smtp-server refuses the line (5xx) or drops the connection; either way nothing is accepted
    if (replies.length === 3) expect(replies[2]).toMatch(/^(5\d\d|421) /);
    const d = await converse({ port });
    d.send(envelope('s@example.org', ['alice@example.org']) + 'DATA\r\n');
    await d.replies(4);
    d.send(Buffer.concat([message('after-long'), Buffer.from('.\r\n')]));
    expect(await d.replies(1)).toEqual(['250 2.0.0 delivered to user/alice/INBOX uid 1']);
    expect(await messages(store, 'alice')).toBe(1);
  });

  it('a client that half-closes once it has sent everything still gets every reply, and the connection is closed once they are out (was: the 250 dropped at its FIN, the mail stored, the client told nothing and sending it again)', async () => {
    const { store, port, log } = await setup();
    const whole = (tag: string, quit: string) => Buffer.concat([Buffer.from(envelope('s@example.org', ['alice@example.org', 'bob@example.org']) + 'DATA\r\n'), message(tag), Buffer.from(`.\r\n${quit}`)]);
    // a script's `printf ... | nc -N`: everything, QUIT too, then shutdown(SHUT_WR), then read
    const c = await converse({ port });
    c.send(whole('half', 'QUIT\r\n'));
    c.socket.end();
    expect((await c.replies(8)).slice(5)).toEqual(['250 2.0.0 delivered to user/alice/INBOX uid 1', '250 2.0.0 delivered to user/bob/INBOX uid 1', expect.stringMatching(/^221 /)]);
    await c.closed;
    // without QUIT: answered all the same, then closed (not held until the idle time)
    const d = await converse({ port });
    d.send(whole('no-quit', ''));
    d.socket.end();
    expect((await d.replies(7)).slice(5)).toEqual(['250 2.0.0 delivered to user/alice/INBOX uid 2', '250 2.0.0 delivered to user/bob/INBOX uid 2']);
    await d.closed;
    // half-closed in the middle of DATA: nothing stored, the connection let go
    const e = await converse({ port });
    e.send(whole('cut', '').subarray(0, -3));
    e.socket.end();
    await e.closed;
    // one that went away altogether after the final dot: stored (its MTA will send it again, README), and no warning
    const f = await converse({ port });
    f.send(whole('gone', 'MAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.org>\r\n'));
    f.socket.destroy();
    for (let i = 0; i < 100 && (await messages(store, 'bob')) < 3; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    await new Promise((resolve) => setTimeout(resolve, 100)); // its replies written, to nobody
    expect(await messages(store, 'alice')).toBe(3);
    expect((await store.fetch('user/alice/INBOX', 2)).equals(message('no-quit'))).toBe(true);
    expect(log.filter((entry) => entry.level === 'warn')).toEqual([]); // a client going away is not the server's trouble
  });

  it('stores nothing when the connection drops before the final dot', async () => {
    const { store, port, log } = await setup();
    const c = await converse({ port });
    c.send(envelope('s@example.org', ['alice@example.org', 'bob@example.org']) + 'DATA\r\n');
    await c.replies(5);
    c.send(message('cut', 'no final dot follows\r\n'));
    await new Promise((resolve) => setTimeout(resolve, 100));
    c.socket.destroy();
    await c.closed;
    for (let i = 0; i < 50 && !log.some((e) => e.event === 'lmtp.aborted'); i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(log.some((e) => e.event === 'lmtp.aborted')).toBe(true);
    expect(await messages(store, 'alice')).toBe(0);
    expect(await messages(store, 'bob')).toBe(0);
    expect((await store.stats()).blobs).toBe(0);
  });

  it('refuses an unknown or malformed recipient at RCPT time; DATA with none accepted is refused', async () => {
    const { store, port } = await setup();
    const c = await converse({ port });
    c.send(envelope('s@example.org', ['nobody@example.org', 'alice/Sent@example.org']) + 'DATA\r\n');
    const replies = await c.replies(5);
    expect(replies[2]).toBe('550 5.1.1 no such mailbox');
    expect(replies[3]).toMatch(/^550 5\.1\.3 /); // a '/' would name another level of the hierarchy
    expect(replies[4]).toMatch(/^503 /);
    expect(await messages(store, 'alice')).toBe(0);
    expect(() => mailboxFor('user/{domain}/{local}', 'Bob@Example.ORG')).not.toThrow();
    expect(mailboxFor('user/{domain}/{local}', 'Bob@Example.ORG')).toBe('user/example.org/bob');
  });

  it('an INBOX renamed away while its user keeps other mailboxes is 450 4.2.1 (the MTA retries), at RCPT and after DATA; a user with no mailbox is still 550 5.1.1 (was: 550 during an archive rotation, the mail bounced for good)', async () => {
    const { store, port, log } = await setup();
    await store.createMailbox('user/alice/Sent');
    await store.renameMailbox('user/alice/INBOX', 'user/alice/Archive');
    const c = await converse({ port });
    c.send(envelope('s@example.org', ['alice@example.org', 'alice+lists@example.org', 'nobody@example.org']));
    const replies = await c.replies(5);
    expect(replies[2]).toMatch(/^450 4\.2\.1 user\/alice\/INBOX does not exist now/);
    expect(replies[3]).toMatch(/^450 4\.2\.1 user\/alice\/INBOX /); // +detail: the mailbox without it
    expect(replies[4]).toBe('550 5.1.1 no such mailbox');
    expect(log.filter((e) => e.event === 'lmtp.refused').map((e) => e.reply)).toEqual([expect.stringMatching(/^450 /), expect.stringMatching(/^450 /), '550 5.1.1 no such mailbox']);
    // accepted at RCPT, renamed away before the final dot: the append's NOT_FOUND is 450 too
    await store.createMailbox('user/alice/INBOX');
    c.send('RSET\r\n' + envelope('s@example.org', ['alice@example.org', 'bob@example.org']).replace(/^LHLO[^\n]*\n/, '') + 'DATA\r\n');
    expect((await c.replies(5)).slice(1)).toEqual(['250 2.1.0 Accepted', '250 2.1.5 Accepted', '250 2.1.5 Accepted', expect.stringMatching(/^354 /)]);
    await store.renameMailbox('user/alice/INBOX', 'user/alice/Archive-2');
    c.send(message('rotated') + '.\r\n');
    const [alice, bob] = await c.replies(2);
    expect(alice).toMatch(/^450 4\.2\.1 user\/alice\/INBOX /);
    expect(bob).toMatch(/^250 2\.0\.0 delivered to user\/bob\/INBOX uid 1/);
    // the INBOX made again: the retry is delivered
    await store.createMailbox('user/alice/INBOX');
    c.send(envelope('s@example.org', ['alice@example.org']).replace(/^LHLO[^\n]*\n/, '') + 'DATA\r\n' + message('retried') + '.\r\n');
    expect((await c.replies(4)).at(-1)).toMatch(/^250 2\.0\.0 delivered to user\/alice\/INBOX uid 1/);
    c.socket.destroy();
  });

  it('a missing INBOX whose user cannot be looked up (listMailboxes fails: EIO, the index reopening) is 451 4.3.0 logged as a warning, at RCPT and after DATA; the other recipients are delivered (was: 550 5.1.1, a bounce for good over a transient fault)', async () => {
    let listing: MailstoreError | undefined = new MailstoreError('UNAVAILABLE', 'the index is being reopened');
    const unlisted = (store: Store): LmtpStore => ({
      status: (name) => store.status(name),
      append: (name, bytes, options) => store.append(name, bytes, options),
      listMailboxes: (options) => (listing ? Promise.reject(listing) : store.listMailboxes(options)),
    });
    const { store, port, log } = await setup({ store: unlisted });
    await store.createMailbox('user/alice/Sent');
    await store.renameMailbox('user/alice/INBOX', 'user/alice/Archive');
    const c = await converse({ port });
    c.send(envelope('s@example.org', ['alice@example.org', 'nobody@example.org', 'bob@example.org']));
    const rcpt = await c.replies(5);
    expect(rcpt[2]).toMatch(/^451 4\.3\.0 local error in processing \(UNAVAILABLE\): user\/alice\/INBOX does not exist, and whether its user has other mailboxes could not be read/);
    expect(rcpt[3]).toMatch(/^451 4\.3\.0 .*\(UNAVAILABLE\)/); // nobody's may be a user whose INBOX is being made again too
    expect(rcpt[4]).toBe('250 2.1.5 Accepted');
    expect(log.filter((e) => e.event === 'lmtp.refused').map((e) => e.level)).toEqual(['warn', 'warn']);
    // accepted at RCPT, renamed away before the final dot, the look failing (EIO): 451 for alice, bob delivered
    await store.createMailbox('user/alice/INBOX');
    listing = undefined;
    c.send('RSET\r\n' + envelope('s@example.org', ['alice@example.org', 'bob@example.org']).replace(/^LHLO[^\n]*\n/, '') + 'DATA\r\n');
    expect((await c.replies(5)).slice(1)).toEqual(['250 2.1.0 Accepted', '250 2.1.5 Accepted', '250 2.1.5 Accepted', expect.stringMatching(/^354 /)]);
    await store.renameMailbox('user/alice/INBOX', 'user/alice/Archive-2');
    listing = new MailstoreError('IO', 'EIO reading the index');
    c.send(message('unlisted') + '.\r\n');
    const [alice, bob] = await c.replies(2);
    expect(alice).toMatch(/^451 4\.3\.0 local error in processing \(IO\): user\/alice\/INBOX /);
    expect(bob).toMatch(/^250 2\.0\.0 delivered to user\/bob\/INBOX uid 1/);
    expect(log.filter((e) => e.event === 'lmtp.failed').map((e) => [e.code, e.level, e.trouble])).toEqual([['NOT_FOUND', 'warn', expect.stringContaining('EIO reading the index')]]);
    // the look works again: a rotation's 450 (carol has a Sent but no INBOX), and 550 for a user with nothing
    listing = undefined;
    await store.createMailbox('user/carol/Sent');
    c.send(envelope('s@example.org', ['carol@example.org', 'nobody@example.org']).replace(/^LHLO[^\n]*\n/, ''));
    expect((await c.replies(3)).slice(1)).toEqual([expect.stringMatching(/^450 4\.2\.1 user\/carol\/INBOX /), '550 5.1.1 no such mailbox']);
    c.socket.destroy();
  });

  it('refuses a local part of 8-bit bytes that are not UTF-8: they all read as U+FFFD, one mailbox for every such address', async () => {
    const { store, port } = await setup();
    await store.createMailbox('user/\ufffdlice/INBOX'); // made for one of them (\xe4lice, say), reached by all
    const c = await converse({ port });
    c.send('LHLO client.example\r\nMAIL FROM:<s@example.org>\r\n');
    await c.replies(2);
    c.send(Buffer.from('RCPT TO:<\xfelice@example.org>\r\n', 'latin1'));
    expect((await c.replies(1))[0]).toMatch(/^550 5\.1\.3 .*not UTF-8/);
    expect(() => mailboxFor('user/{local}/INBOX', '\ufffdlice@example.org')).toThrow(/not UTF-8/);
  });

  it('answers 552 5.3.4 to each recipient of a message over the store limit and stores nothing', async () => {
    const { store, port } = await setup({ messageBytesMax: 4096 });
    const c = await converse({ port });
    c.send(envelope('s@example.org', ['alice@example.org', 'bob@example.org']) + 'DATA\r\n');
    await c.replies(5);
    c.send(Buffer.concat([message('big', `${'y'.repeat(70)}\r\n`.repeat(200)), Buffer.from('.\r\n')]));
    expect(await c.replies(2)).toEqual(['552 5.3.4 message too big for system', '552 5.3.4 message too big for system']);
    // a declared size over the limit is refused at MAIL; the connection is still good for the next
    c.send('MAIL FROM:<s@example.org> SIZE=100000\r\n');
    expect((await c.replies(1))[0]).toMatch(/^552 /);
    c.send('MAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n');
    await c.replies(3);
    c.send(Buffer.concat([message('small'), Buffer.from('.\r\n')]));
    expect(await c.replies(1)).toEqual(['250 2.0.0 delivered to user/alice/INBOX uid 1']);
    expect(await messages(store, 'bob')).toBe(0);
    expect((await store.stats()).blobs).toBe(1);
  });

  it('answers 452 4.3.1 on a full disk and 451 4.3.0 on an I/O error, keeps nothing, and delivers once the disk is back', async () => {
    const fs = new FaultFileSystem();
    const { store, port, log } = await setup({ fs });
    const c = await converse({ port });
    const deliver = async (tag: string) => {
      c.send('MAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n');
      await c.replies(4);
      c.send(Buffer.concat([message(tag), Buffer.from('.\r\n')]));
      return c.replies(2);
    };
    c.send('LHLO client.example\r\n');
    await c.replies(1);
    // the whole store's disk: a small message goes inside its journal record (inline bodies), a larger one to a pack
    fs.failAll('ENOSPC', { pathPrefix: store.root });
    expect(await deliver('full')).toEqual(['452 4.3.1 insufficient system storage', '452 4.3.1 insufficient system storage']);
    fs.clear();
    fs.injectAt((op) => op.kind === 'write' && (op.path.startsWith(join(store.root, 'packs')) || op.path.startsWith(join(store.root, 'journal'))), 'EIO');
    expect(await deliver('eio')).toEqual(['451 4.3.0 local error in processing (IO)', '451 4.3.0 local error in processing (IO)']);
    expect(await messages(store, 'alice')).toBe(0);
    expect(log.filter((e) => e.event === 'lmtp.failed').map((e) => e.code)).toEqual(['NO_SPACE', 'NO_SPACE', 'IO', 'IO']);
    expect(log.filter((e) => e.event === 'lmtp.failed').map((e) => e.level)).toEqual(['warn', 'warn', 'warn', 'warn']); // the server's trouble: monitoring sees it
    expect(await deliver('back')).toEqual(['250 2.0.0 delivered to user/alice/INBOX uid 1', '250 2.0.0 delivered to user/bob/INBOX uid 1']);
    expect((await store.fetch('user/alice/INBOX', 1)).equals(message('back'))).toBe(true);
  });

  it('answers 452 4.2.2 to a recipient over quota and delivers to the others', async () => {
    const { store, port, log } = await setup();
    await setQuota(store, 'user/bob', { messages: 0 });
    const c = await converse({ port });
    c.send(envelope('s@example.org', ['alice@example.org', 'bob@example.org']) + 'DATA\r\n');
    await c.replies(5);
    c.send(Buffer.concat([message('quota'), Buffer.from('.\r\n')]));
    expect(await c.replies(2)).toEqual(['250 2.0.0 delivered to user/alice/INBOX uid 1', '452 4.2.2 mailbox full']);
    expect(await messages(store, 'bob')).toBe(0);
    expect(log.filter((e) => e.event === 'lmtp.failed').map((e) => [e.code, e.level])).toEqual([['OVER_QUOTA', undefined]]); // ordinary traffic: info
  });

  it('one transaction, one reply each: delivered, mailbox full, a store that stopped itself, a replica: only the first is 2xx, none of the others 5xx (the MTA keeps them queued)', async () => {
    const failing = (store: Store): LmtpStore => ({
      listMailboxes: (options) => store.listMailboxes(options),
      status: (name) => store.status(name.replace(/^user\/(carol|dave)\//, 'user/alice/')),
      append: (name, bytes, options) => {
        if (name.startsWith('user/carol/')) return Promise.reject(new MailstoreError('HALTED', 'an invariant failed'));
        if (name.startsWith('user/dave/')) return Promise.reject(new MailstoreError('READ_ONLY_REPLICA', 'a replica'));
        return store.append(name, bytes, options);
      },
    });
    const { store, port, log } = await setup({ store: failing });
    await setQuota(store, 'user/bob', { messages: 0 });
    const c = await converse({ port });
    c.send(envelope('s@example.org', ['alice@example.org', 'bob@example.org', 'carol@example.org', 'dave@example.org']) + 'DATA\r\n');
    await c.replies(7);
    c.send(Buffer.concat([message('mixed'), Buffer.from('.\r\n')]));
    expect(await c.replies(4)).toEqual([
      '250 2.0.0 delivered to user/alice/INBOX uid 1', '452 4.2.2 mailbox full',
      '451 4.3.0 local error in processing (HALTED)', '451 4.3.0 local error in processing (READ_ONLY_REPLICA)',
    ]);
    expect((await store.fetch('user/alice/INBOX', 1)).equals(message('mixed'))).toBe(true);
    expect(await messages(store, 'bob')).toBe(0);
    expect(log.filter((e) => e.event === 'lmtp.failed').map((e) => `${e.code} ${e.level}`).sort()).toEqual(['HALTED warn', 'OVER_QUOTA undefined', 'READ_ONLY_REPLICA warn']);
  });

  it('offers ENHANCEDSTATUSCODES (RFC 2033 section 5) and every reply after LHLO carries exactly one RFC 3463 code, of the reply\'s own class (was: not offered; smtp-server\'s code from the reply number alone would have come before ours, 452 4.2.2 4.3.1 for a full disk)', async () => {
    const moved = (user: string, permanent: boolean) => new MailstoreError('MOVED', `user ${user} moved`, { moved: { user, to: 'mail2.example', permanent } });
    // recipients refused at RCPT (status), and recipients accepted whose append fails after DATA
    const atRcpt: Record<string, () => MailstoreError> = {
      moved: () => moved('moved', false), gone: () => moved('gone', true), badname: () => new MailstoreError('INVALID', 'not a mailbox name'),
      halted: () => new MailstoreError('HALTED', 'an invariant failed'), replica: () => new MailstoreError('READ_ONLY_REPLICA', 'a replica'),
    };
    const atData: Record<string, () => MailstoreError> = {
      nospace: () => new MailstoreError('NO_SPACE', 'disk full'), io: () => new MailstoreError('IO', 'EIO'), deleted: () => new MailstoreError('NOT_FOUND', 'deleted'),
      left: () => moved('left', false), invalid: () => new MailstoreError('INVALID', 'a bad message'), huge: () => new MailstoreError('TOO_LARGE', 'too large'),
    };
    const userOf = (name: string) => name.split('/')[1];
    const failing = (store: Store): LmtpStore => ({
      listMailboxes: (options) => store.listMailboxes(options),
      status: (name) => {
        const refusal = atRcpt[userOf(name)];
        if (refusal) return Promise.reject(refusal());
        return store.status(atData[userOf(name)] ? 'user/alice/INBOX' : name);
      },
      append: (name, bytes, options) => (atData[userOf(name)] ? Promise.reject(atData[userOf(name)]()) : store.append(name, bytes, options)),
    });
    const { store, server, port } = await setup({ store: failing, messageBytesMax: 4096 });
    await setQuota(store, 'user/bob', { messages: 0 });
    const c = await converse({ port });
    let transcript = '';
    c.socket.on('data', (chunk: Buffer) => { transcript += chunk.toString('latin1'); });
    c.send('LHLO client.example\r\n');
    await c.replies(1);
    expect(transcript.split('\r\n')).toContain('250-ENHANCEDSTATUSCODES');
    c.send('RCPT TO:<alice@example.org>\r\nMAIL FROM:<s@example.org> SIZE=100000\r\nMAIL FROM:<s@example.org>\r\n');
    const rcpts = ['alice', 'nobody', 'a/b', ...Object.keys(atRcpt), 'bob', ...Object.keys(atData)];
    c.send(`${rcpts.map((user) => `RCPT TO:<${user}@example.org>\r\n`).join('')}DATA\r\n`);
    await c.replies(3 + rcpts.length + 1);
    c.send(Buffer.concat([message('codes'), Buffer.from('.\r\n')]));
    await c.replies(2 + Object.keys(atData).length);
    c.send(envelope('s@example.org', ['alice@example.org']).replace(/^LHLO.*\r\n/, '') + 'DATA\r\n');
    await c.replies(3);
    c.send(Buffer.concat([message('big', `${'y'.repeat(70)}\r\n`.repeat(200)), Buffer.from('.\r\nRSET\r\nNOOP\r\nVRFY alice\r\nFOO\r\n')]));
    await c.replies(5);
    await server.close();
    await c.replies(1);
    open.splice(0, 1, { store }); // closed already
    const replies = transcript.split('\r\n').filter((line) => /^\d{3} /.test(line)).slice(1); // the LHLO reply carries none (RFC 2034 section 3)
    expect(replies).toEqual([
      expect.stringMatching(/^503 5\.5\.1 Error: need MAIL command$/),
      '552 5.3.4 Error: message exceeds fixed maximum message size 4096', // smtp-server's own, with its code for it
      '250 2.1.0 Accepted',
      // RCPT: alice, nobody, a/b, the refusals at RCPT, bob and the failures after DATA
      '250 2.1.5 Accepted', '550 5.1.1 no such mailbox', '550 5.1.3 "a/b@example.org" cannot name a mailbox',
      '451 4.2.1 user moved moved to mail2.example by xfer; route its mail there', '550 5.1.6 user gone moved to mail2.example',
      '550 5.1.3 not a mailbox name', '451 4.3.0 local error in processing (HALTED)', '451 4.3.0 local error in processing (READ_ONLY_REPLICA)',
      ...Array<string>(1 + Object.keys(atData).length).fill('250 2.1.5 Accepted'),
      expect.stringMatching(/^354 /), // 3xx: no code (RFC 2034 section 3)
      '250 2.0.0 delivered to user/alice/INBOX uid 1', '452 4.2.2 mailbox full', '452 4.3.1 insufficient system storage',
      '451 4.3.0 local error in processing (IO)', '550 5.1.1 no such mailbox', '451 4.2.1 user left moved to mail2.example by xfer; route its mail there',
      '554 5.6.0 a bad message', '552 5.3.4 message too big for system',
      '250 2.1.0 Accepted', '250 2.1.5 Accepted', expect.stringMatching(/^354 /), '552 5.3.4 message too big for system',
      expect.stringMatching(/^250 2\.0\.0 /), expect.stringMatching(/^250 2\.0\.0 /), expect.stringMatching(/^252 2\.1\.5 /), expect.stringMatching(/^500 5\.5\.2 /), // RSET, NOOP, VRFY, FOO
      '421 4.3.2 mailstore LMTP shutting down',
    ]);
    for (const reply of replies.filter((line) => !line.startsWith('3'))) {
      expect(reply, 'one code, its class the first digit').toMatch(/^([245])\d\d \1\.\d{1,3}\.\d{1,3} (?!\d\.\d{1,3}\.\d{1,3}( |$))/);
    }
  });

  it('listens on a unix socket, replaces one a crash left behind, and refuses one another process serves, or a path that is no socket', async () => {
    const store = await Store.open(tmpDir('lmtp'), { create: true });
    await store.createMailbox('user/alice/INBOX');
    const dir = tmpDir('lmtp-sock');
    const path = join(dir, 'lmtp.sock');
    // a stale socket: its process was killed while listening, and nobody answers on it
    spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    expect(lstatSync(path).isSocket()).toBe(true);
    // a file that is no socket (a typo in --lmtp unix:PATH naming a config file) was unlinked as stale
    const notSocket = join(dir, 'main.cf');
    writeFileSync(notSocket, 'myhostname = mail.example.org\n');
    await expect(startLmtp(store, { listen: `unix:${notSocket}` })).rejects.toMatchObject({ code: 'INVALID', message: expect.stringContaining('not a socket') });
    expect(readFileSync(notSocket, 'utf8')).toBe('myhostname = mail.example.org\n');
    const server = await startLmtp(store, { listen: `unix:${path}` });
    open.push({ server, store });
    expect(server.address).toBe(`unix:${path}`);
    const c = await converse({ path });
    c.send(envelope('s@example.org', ['alice@example.org']) + 'DATA\r\n');
    await c.replies(4);
    c.send(Buffer.concat([message('unix'), Buffer.from('.\r\n')]));
    expect(await c.replies(1)).toEqual(['250 2.0.0 delivered to user/alice/INBOX uid 1']);
    await expect(startLmtp(store, { listen: `unix:${path}` })).rejects.toMatchObject({ code: 'EXISTS' });
    await expect(startLmtp(store, { listen: 'nowhere' })).rejects.toMatchObject({ code: 'INVALID' });
    await expect(startLmtp(store, { listen: '127.0.0.1:0', template: 'shared/INBOX' })).rejects.toMatchObject({ code: 'INVALID' });
  });

  it('refuses a template with a placeholder it does not know (was: taken as text, every recipient 550 5.1.1 and the MTA bounced all mail for good), or that names no mailbox', async () => {
    const store = await Store.open(tmpDir('lmtp'), { create: true });
    open.push({ store });
    await store.createMailbox('user/alice/INBOX');
    for (const template of ['user/{local}/{Domain}', 'user/{local}/{folder}', 'user/{user}/{local}', 'user/{local']) {
      await expect(startLmtp(store, { listen: '127.0.0.1:0', template }), template).rejects.toMatchObject({ code: 'INVALID', message: expect.stringContaining('{local}, {domain} and {address}') });
    }
    // nor one that names no mailbox for any recipient (was: every recipient 550 5.1.3, all mail bounced)
    for (const template of ['user/{local}/', 'user//{local}', 'user/{local}/%d', '/user/{local}']) {
      await expect(startLmtp(store, { listen: '127.0.0.1:0', template }), template).rejects.toMatchObject({ code: 'INVALID', message: expect.stringContaining('names no mailbox') });
    }
    const server = await startLmtp(store, { listen: '127.0.0.1:0', template: 'user/{local}/INBOX' });
    open.push({ server });
  });

  it('refuses a relative unix:PATH (was: a socket wherever the daemon\'s working directory was, Postfix\'s lmtp:unix:mailstore/lmtp copied as it is)', async () => {
    const store = await Store.open(tmpDir('lmtp'), { create: true });
    open.push({ store });
    const relativePath = relative(process.cwd(), join(tmpDir('lmtp-sock'), 'lmtp.sock'));
    for (const path of [relativePath, 'mailstore/lmtp']) {
      await expect(startLmtp(store, { listen: `unix:${path}` }), path).rejects.toMatchObject({ code: 'INVALID', message: expect.stringContaining('absolute') });
    }
  });

  it('its unix socket is 0660 whatever the umask, as the daemon\'s socket: the MTA in the group may connect, other users not (umask 000 gave 0777, 022 gave 0755, shutting the group out)', async () => {
    const store = await Store.open(tmpDir('lmtp'), { create: true });
    const before = process.umask();
    try {
      for (const umask of [0o000, 0o022, 0o077]) {
        const path = join(tmpDir('lmtp-sock'), 'lmtp.sock');
        process.umask(umask);
        const server = await startLmtp(store, { listen: `unix:${path}` });
        try {
          expect((lstatSync(path).mode & 0o777).toString(8), `umask ${umask.toString(8)}`).toBe('660');
          expect(process.umask()).toBe(umask);
        } finally {
          await server.close();
        }
      }
    } finally {
      process.umask(before);
      await store.close();
    }
  });

  it('a client that connects and never sends, one that stalls half way through a command, and one that stops reading its replies are closed after the idle time; another delivers meanwhile', async () => {
    const idleMs = lmtpLimits.idleMs;
    (lmtpLimits as { idleMs: number }).idleMs = 400; // read when the server starts
    let started: Awaited<ReturnType<typeof setup>>;
    try {
      started = await setup();
    } finally {
      (lmtpLimits as { idleMs: number }).idleMs = idleMs;
    }
    const { store, port } = started;
    const silent = await converse({ port });
    const half = await converse({ port });
    half.send('LHLO client.example\r\nMAIL FROM:<s@exa');
    const deaf = await converse({ port });
    deaf.socket.pause(); // reads none of its replies
    deaf.send(`LHLO client.example\r\n${'NOOP\r\n'.repeat(50_000)}`);
    const good = await converse({ port });
    good.send(envelope('s@example.org', ['alice@example.org']) + 'DATA\r\n');
    await good.replies(4);
    good.send(Buffer.concat([message('meanwhile'), Buffer.from('.\r\n')]));
    expect(await good.replies(1)).toEqual(['250 2.0.0 delivered to user/alice/INBOX uid 1']);
    const t0 = Date.now();
    await Promise.all([silent.closed, half.closed]);
    expect((await half.replies(2, 100)).pop()).toMatch(/^421 /);
    deaf.socket.resume(); // what it is sent is bounded; then it finds the connection closed
    await deaf.closed;
    expect(Date.now() - t0).toBeLessThan(10_000); // lmtpLimits.idleMs was 5 minutes
    expect(await messages(store, 'alice')).toBe(1);
  });

  it('close() tells idle connections 421 at once instead of waiting out a grace period', async () => {
    const { server, port } = await setup();
    const c = await converse({ port });
    c.send('LHLO client.example\r\n');
    await c.replies(1);
    const started = Date.now();
    await server.close();
    // below the 10 s grace it would wait out (lmtpLimits.closeGraceMs), with room for a loaded CI
    expect(Date.now() - started).toBeLessThan(8000);
    expect((await c.replies(1))[0]).toMatch(/^421 /);
    await c.closed;
    open.splice(0, 1, { store: open[0].store }); // closed already
  });

  it('close() lets a transaction in DATA finish: its final dot during the grace gets the 250 once durable, then 421 (was 421 alone: the delivery begun after close() was not waited for, and the MTA sent the stored mail again)', async () => {
    const slow = (store: Store): LmtpStore => ({
      listMailboxes: (options) => store.listMailboxes(options),
      status: (name) => store.status(name),
      append: async (name, bytes, options) => {
        await new Promise((resolve) => setTimeout(resolve, 300));
        return store.append(name, bytes, options);
      },
    });
    const { store, server, port } = await setup({ store: slow });
    const c = await converse({ port });
    c.send(envelope('s@example.org', ['alice@example.org', 'bob@example.org']) + 'DATA\r\n');
    await c.replies(5);
    c.send(message('sigterm'));
    const closing = server.close();
    await new Promise((resolve) => setTimeout(resolve, 50));
    c.send('.\r\n');
    expect(await c.replies(3)).toEqual([
      '250 2.0.0 delivered to user/alice/INBOX uid 1', '250 2.0.0 delivered to user/bob/INBOX uid 1', expect.stringMatching(/^421 /),
    ]);
    await closing;
    open.splice(0, 1, { store });
    expect((await store.fetch('user/alice/INBOX', 1)).equals(message('sigterm'))).toBe(true);
  });
});

describe('LMTP from swaks', () => {
  const swaks = which('swaks');
  it.skipIf(!swaks)('delivers with swaks --protocol LMTP and refuses an unknown recipient with 550', async () => {
    const { store, port } = await setup();
    const file = join(tmpDir('swaks'), 'm.eml');
    writeFileSync(file, message('swaks'));
    const ok = await run('swaks', ['--protocol', 'LMTP', '--server', '127.0.0.1', '--port', String(port), '--from', 's@example.org', '--to', 'alice@example.org,bob@example.org', '--data', file]);
    expect(ok.code, ok.output).toBe(0);
    expect(ok.output).toMatch(/<- {2}250 2\.0\.0 delivered to user\/alice\/INBOX uid 1/);
    expect(ok.output).toMatch(/<- {2}250 2\.0\.0 delivered to user\/bob\/INBOX uid 1/);
    // swaks ends the data with "\r\n." after the file's own last line break: one empty line more
    expect((await store.fetch('user/alice/INBOX', 1)).equals(Buffer.concat([message('swaks'), Buffer.from('\r\n')]))).toBe(true);
    expect((await store.stats()).blobs).toBe(1);
    const refused = await run('swaks', ['--protocol', 'LMTP', '--server', '127.0.0.1', '--port', String(port), '--from', 's@example.org', '--to', 'nobody@example.org', '--data', file]);
    expect(refused.code).not.toBe(0);
    expect(refused.output).toMatch(/<\*\* 550 5\.1\.1 no such mailbox/);
  });
  if (!swaks) it('swaks is not installed (apt-get install swaks): skipped', () => { console.log('skip: swaks is not installed'); });
});
