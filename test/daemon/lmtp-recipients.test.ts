// LMTP's RCPT check remembers a mailbox found to exist for lmtpLimits.recipientCacheMs (src/daemon/lmtp.ts
// RecentMailboxes), so a busy MTA's recipients cost no index reads each: what that may not change is
// the answer a deleted mailbox gets (550 5.1.1, after DATA instead of at RCPT) and that nothing is stored.
// And one final reply per RCPT answered 250, a repeated address too, whatever smtp-server's envelope keeps.
import { afterEach, describe, expect, it } from 'vitest';
import { RecentMailboxes, startLmtp, type LmtpServer, type LmtpStore } from '../../src/daemon/lmtp.js';
import { lmtpLimits } from '../../src/limits.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { converse } from './lmtp-client.js';

const open: { server?: LmtpServer; store?: Store }[] = [];
afterEach(async () => {
  for (const { server, store } of open.splice(0)) {
    await server?.close();
    await store?.close();
  }
});

describe('RecentMailboxes', () => {
  it('keeps a name for its time, then forgets it; past its size it starts over', () => {
    const recent = new RecentMailboxes(1000, 2);
    recent.add('a', 0);
    expect(recent.has('a', 999)).toBe(true);
    expect(recent.has('a', 1000)).toBe(false);
    expect(recent.has('a', 500)).toBe(false); // forgotten once expired
    recent.add('a', 0);
    recent.add('b', 0);
    recent.add('c', 0); // the third: the first two are dropped
    expect([recent.has('a', 1), recent.has('b', 1), recent.has('c', 1)]).toEqual([false, false, true]);
  });
});

describe('LMTP recipients', () => {
  it('asks the store once per mailbox within the cache time; a mailbox deleted meanwhile gets 550 5.1.1 after DATA and nothing is stored', async () => {
    const store = await Store.open(tmpDir('lmtp-rcpt'), { create: true });
    await store.createMailbox('user/alice/INBOX');
    await store.createMailbox('user/bob/INBOX');
    let statusCalls = 0;
    const counting: LmtpStore = {
      status: (mailbox) => { statusCalls++; return store.status(mailbox); },
      append: (mailbox, bytes, options) => store.append(mailbox, bytes, options),
      listMailboxes: (options) => store.listMailboxes(options),
    };
    const server = await startLmtp(counting, { listen: '127.0.0.1:0', hostname: 'test.example' });
    open.push({ server, store });
    const c = await converse({ port: Number(server.address.split(':')[1]) });
    c.send('LHLO client.example\r\n');
    await c.replies(1);
    const deliver = async (to: string[]) => {
      c.send(`MAIL FROM:<s@example.org>\r\n${to.map((t) => `RCPT TO:<${t}>\r\n`).join('')}DATA\r\n`);
      const rcpt = await c.replies(2 + to.length);
      c.send('Subject: x\r\n\r\nbody\r\n.\r\n');
      return { rcpt, final: await c.replies(to.length) };
    };
    const first = await deliver(['alice@example.org', 'bob@example.org']);
    expect(first.final).toEqual(['250 2.0.0 delivered to user/alice/INBOX uid 1', '250 2.0.0 delivered to user/bob/INBOX uid 1']);
    expect(statusCalls).toBe(2);
    await deliver(['alice@example.org']);
    expect(statusCalls).toBe(2); // remembered: no index read for it

    await store.deleteMailbox('user/bob/INBOX');
    const after = await deliver(['bob@example.org', 'alice@example.org']);
    expect(after.rcpt.slice(1, 3)).toEqual(['250 2.1.5 Accepted', '250 2.1.5 Accepted']); // within recipientCacheMs
    expect(after.final).toEqual(['550 5.1.1 no such mailbox', '250 2.0.0 delivered to user/alice/INBOX uid 3']);
    await expect(store.status('user/bob/INBOX')).rejects.toMatchObject({ code: 'NOT_FOUND' });

    await new Promise((resolve) => setTimeout(resolve, lmtpLimits.recipientCacheMs + 50));
    c.send('MAIL FROM:<s@example.org>\r\nRCPT TO:<bob@example.org>\r\n');
    expect(await c.replies(2)).toEqual(['250 2.1.0 Accepted', '550 5.1.1 no such mailbox']); // forgotten: asked again
    c.socket.destroy();
  }, 30_000);
});

describe('LMTP repeated recipients', () => {
  async function serve() {
    const store = await Store.open(tmpDir('lmtp-repeat'), { create: true });
    for (const user of ['alice', 'bob', 'zoë']) await store.createMailbox(`user/${user}/INBOX`);
    const server = await startLmtp(store, { listen: '127.0.0.1:0', hostname: 'test.example' });
    open.push({ server, store });
    const c = await converse({ port: Number(server.address.split(':')[1]) });
    c.send('LHLO client.example\r\n');
    await c.replies(1);
    return { store, c };
  }

  it('one final reply for every RCPT answered 250, a repeated address too (RFC 2033 4.2); the next transaction\'s replies stay its own', async () => {
    const { store, c } = await serve();
    // smtp-server keeps one envelope entry per address (case-insensitive): the second RCPT replaced the first
    c.send('MAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.org>\r\nRCPT TO:<ALICE@example.org>\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n');
    expect(await c.replies(6)).toEqual(['250 2.1.0 Accepted', '250 2.1.5 Accepted', '250 2.1.5 Accepted', '250 2.1.5 Accepted', '250 2.1.5 Accepted', expect.stringMatching(/^354 /)]);
    c.send('Subject: x\r\n\r\nbody\r\n.\r\nMAIL FROM:<t@example.org>\r\nRCPT TO:<nobody@example.org>\r\n');
    expect(await c.replies(6)).toEqual([
      '250 2.0.0 delivered to user/alice/INBOX uid 1', '250 2.0.0 delivered to user/alice/INBOX uid 1',
      '250 2.0.0 delivered to user/bob/INBOX uid 1', '250 2.0.0 delivered to user/alice/INBOX uid 1',
      '250 2.1.0 Accepted', '550 5.1.1 no such mailbox', // the pipelined MAIL and RCPT of the next transaction
    ]);
    expect((await store.status('user/alice/INBOX')).messages).toBe(1);
    c.socket.destroy();
  });

  it('an address with a +detail goes to its user\'s mailbox when the whole local part names none (was 550 5.1.1: Postfix bounced alice+lists@ for good); a mailbox named with the + still takes its own mail', async () => {
    const { store, c } = await serve();
    await store.createMailbox('user/bob+x/INBOX');
    c.send('MAIL FROM:<s@example.org>\r\nRCPT TO:<Alice+Lists@example.org>\r\nRCPT TO:<bob+x@example.org>\r\nRCPT TO:<bob+y+z@example.org>\r\n'
      + 'RCPT TO:<nobody+x@example.org>\r\nRCPT TO:<+x@example.org>\r\nDATA\r\n');
    expect(await c.replies(7)).toEqual([
      '250 2.1.0 Accepted', '250 2.1.5 Accepted', '250 2.1.5 Accepted', '250 2.1.5 Accepted', '550 5.1.1 no such mailbox', '550 5.1.1 no such mailbox', expect.stringMatching(/^354 /),
    ]);
    c.send('Subject: x\r\n\r\nbody\r\n.\r\n');
    expect(await c.replies(3)).toEqual([
      '250 2.0.0 delivered to user/alice/INBOX uid 1', '250 2.0.0 delivered to user/bob+x/INBOX uid 1', '250 2.0.0 delivered to user/bob/INBOX uid 1',
    ]);
    expect((await store.status('user/alice/INBOX')).messages).toBe(1);
    c.socket.destroy();
  });

  it('a quoted local part is the same mailbox as the unquoted one (RFC 5321 4.1.2; was 550 5.1.1 for "alice"@, the quotes taken as part of the name)', async () => {
    const { store, c } = await serve();
    c.send('MAIL FROM:<s@example.org>\r\nRCPT TO:<"Alice"@example.org>\r\nRCPT TO:<"b\\ob"@example.org>\r\nRCPT TO:<"alice/Sent"@example.org>\r\nDATA\r\n');
    const replies = await c.replies(5);
    expect(replies.slice(0, 3)).toEqual(['250 2.1.0 Accepted', '250 2.1.5 Accepted', '250 2.1.5 Accepted']);
    expect(replies[3]).toMatch(/^550 5\.1\.3 /); // still no second level of the hierarchy
    c.send('Subject: x\r\n\r\nbody\r\n.\r\n');
    expect(await c.replies(2)).toEqual(['250 2.0.0 delivered to user/alice/INBOX uid 1', '250 2.0.0 delivered to user/bob/INBOX uid 1']);
    expect((await store.status('user/alice/INBOX')).messages).toBe(1);
    c.socket.destroy();
  });

  it('addresses that differ only in Unicode normalization are one mailbox: one copy, and the reply names it as stored', async () => {
    const { store, c } = await serve();
    const composed = 'zo\u00eb@example.org';
    const decomposed = 'zoe\u0308@example.org';
    c.send(Buffer.from(`MAIL FROM:<s@example.org> SMTPUTF8\r\nRCPT TO:<${composed}>\r\nRCPT TO:<${decomposed}>\r\nDATA\r\n`));
    expect(await c.replies(4)).toEqual(['250 2.1.0 Accepted', '250 2.1.5 Accepted', '250 2.1.5 Accepted', expect.stringMatching(/^354 /)]);
    c.send('Subject: x\r\n\r\nbody\r\n.\r\n');
    const delivered = Buffer.from('250 2.0.0 delivered to user/zo\u00eb/INBOX uid 1').toString('latin1'); // the client reads latin1
    expect(await c.replies(2)).toEqual([delivered, delivered]);
    expect((await store.status('user/zo\u00eb/INBOX')).messages).toBe(1);
    c.socket.destroy();
  });

  it('past lmtpLimits.recipientsMax distinct recipients the next is refused 452 4.5.3 (the reply every refusal here carries)', async () => {
    const { store, c } = await serve();
    const users = Array.from({ length: lmtpLimits.recipientsMax + 1 }, (_, i) => `u${i}`);
    await Promise.all(users.map((user) => store.createMailbox(`user/${user}/INBOX`)));
    c.send(`MAIL FROM:<s@example.org>\r\n${users.map((user) => `RCPT TO:<${user}@example.org>\r\n`).join('')}`);
    const replies = await c.replies(users.length + 1);
    expect(replies.slice(1, -1).every((reply) => reply === '250 2.1.5 Accepted')).toBe(true);
    expect(replies.at(-1)).toBe('452 4.5.3 too many recipients');
    c.socket.destroy();
  });

  it('past lmtpLimits.recipientsMax RCPTs, a repeated address is refused 452 4.5.3 like a new one, and the replies still match', async () => {
    const { c } = await serve();
    const rcpts = Array.from({ length: lmtpLimits.recipientsMax + 2 }, (_, i) => (i % 2 === 0 ? 'alice@example.org' : 'bob@example.org'));
    c.send(`MAIL FROM:<s@example.org>\r\n${rcpts.map((to) => `RCPT TO:<${to}>\r\n`).join('')}DATA\r\n`);
    const replies = await c.replies(rcpts.length + 2);
    expect(replies.slice(1, lmtpLimits.recipientsMax + 1).every((reply) => reply === '250 2.1.5 Accepted')).toBe(true);
    expect(replies.slice(lmtpLimits.recipientsMax + 1, -1)).toEqual(['452 4.5.3 too many recipients', '452 4.5.3 too many recipients']);
    c.send('Subject: x\r\n\r\nbody\r\n.\r\n');
    const final = await c.replies(lmtpLimits.recipientsMax);
    expect(final.every((reply) => /^250 2\.0\.0 delivered to user\/(alice|bob)\/INBOX uid 1$/.test(reply))).toBe(true);
    c.send('NOOP\r\n');
    expect(await c.replies(1)).toEqual([expect.stringMatching(/^250 /)]); // no reply left over
    c.socket.destroy();
  });
});
