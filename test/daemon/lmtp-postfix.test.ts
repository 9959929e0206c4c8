// A private Postfix instance (its own config directory, queue and log in a temp directory; no
// listener of its own: master_service_disable = inet) delivers through `lmtp:inet:` into
// startLmtp: what an admin's main.cf does (README, "LMTP from Postfix"). Needs root (Postfix's
// master) and the postfix package; skipped, saying why, without them. Bounded: every wait has a
// deadline and the instance is stopped (by its own master pid at worst) in afterAll.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startLmtp, type LmtpServer, type LmtpStore } from '../../src/daemon/lmtp.js';
import { MailstoreError } from '../../src/errors.js';
import { setQuota } from '../../src/store/quota.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { run, which } from './tools.js';

const postfix = which('postfix');
const sendmail = which('sendmail');
const root = process.getuid?.() === 0;
const why = !postfix || !sendmail ? 'postfix is not installed (apt-get install postfix)' : !root ? 'a private Postfix instance needs root' : undefined;

const MASTER_CF = `
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`;

/** The main.cf lines README gives, plus what a private instance in a temp directory needs. */
function mainCf(dir: string, lmtp: string): string {
  return [
    'compatibility_level = 3.6',
    `queue_directory = ${dir}/queue`, `data_directory = ${dir}/data`,
    `maillog_file = ${dir}/maillog`, `maillog_file_prefixes = ${dir}`, 'syslog_name = postfix-mailstore-test',
    'mail_owner = postfix', 'setgid_group = postdrop',
    'myhostname = mailstore-test.example', 'mydomain = example.org', 'myorigin = example.org', 'mydestination = example.org',
    'inet_interfaces = loopback-only', 'inet_protocols = ipv4', 'master_service_disable = inet', 'biff = no',
    'alias_maps =', 'alias_database =', 'local_recipient_maps =',
    'recipient_delimiter = +', // Debian's main.cf sets it: alice+lists@ is handed over whole
    // the README lines: every local recipient goes to mailstore over LMTP
    `local_transport = lmtp:inet:${lmtp}`,
    '',
  ].join('\n');
}

describe.skipIf(why)('LMTP from a private Postfix instance', () => {
  let dir = '';
  let server: LmtpServer | undefined;
  let store: Store | undefined;
  afterAll(async () => {
    await server?.close();
    await store?.close();
  });

  it('delivers through lmtp: into the store: each recipient, one body for both, a +detail to its user, a bounce for the unknown one; a full mailbox, a moved user and a full disk deferred, each with its own RFC 3463 code (ENHANCEDSTATUSCODES)', async () => {
    store = await Store.open(tmpDir('lmtp-pf-store'), { create: true });
    for (const user of ['alice', 'bob', 's', 'carol']) await store.createMailbox(`user/${user}/INBOX`);
    await setQuota(store, 'user/carol', { messages: 0 });
    // dave was moved away by xfer (451 4.2.1 at RCPT); erin's delivery meets a full disk (452 4.3.1 after DATA)
    const open = store;
    const lmtpStore: LmtpStore = {
      status: (name) => (name.startsWith('user/dave/')
        ? Promise.reject(new MailstoreError('MOVED', 'moved', { moved: { user: 'dave', to: 'mail2.example', permanent: false } }))
        : open.status(name.startsWith('user/erin/') ? 'user/alice/INBOX' : name)),
      append: (name, bytes, options) => (name.startsWith('user/erin/') ? Promise.reject(new MailstoreError('NO_SPACE', 'disk full')) : open.append(name, bytes, options)),
      listMailboxes: (options) => open.listMailboxes(options),
    };
    server = await startLmtp(lmtpStore, { listen: '127.0.0.1:0' });
    dir = tmpDir('lmtp-pf');
    chmodSync(dir, 0o755); // Postfix's daemons run as the postfix user and must reach the queue
    for (const sub of ['queue', 'data']) mkdirSync(join(dir, sub));
    expect((await run('chown', ['postfix', join(dir, 'data')])).code).toBe(0); // master's lock file goes there
    writeFileSync(join(dir, 'main.cf'), mainCf(dir, server.address));
    writeFileSync(join(dir, 'master.cf'), MASTER_CF);
    // bounds for a hang, not a speed: `postfix start` (postfix-script's checks, a dozen processes)
    // took over 20 s, the bound before, at load 28
    const started = await run(postfix!, ['-c', dir, 'start'], { timeoutMs: 60_000 });
    try {
      await deliverThroughPostfix(dir, started);
    } finally {
      await stopPostfix(dir); // before tmpDir's cleanup removes its config
    }
  }, 200_000); // its bounds (start, sendmail, the deliveries) add up to 150 s

  async function deliverThroughPostfix(dir: string, started: { code: number; output: string }): Promise<void> {
    expect(started.code, started.output.split('\n').filter((l) => !/not owned|writable/.test(l)).join('\n')).toBe(0);

    const body = 'Subject: through postfix\r\nMessage-ID: <pf1@example.org>\r\n\r\nhello from postfix\r\n';
    const sent = await run(sendmail!, ['-C', dir, '-f', 's@example.org', 'alice@example.org', 'bob@example.org', 'nobody@example.org', 'carol@example.org', 'alice+lists@example.org', 'dave@example.org', 'erin@example.org'], { input: body, timeoutMs: 30_000 });
    expect(sent.code, sent.output).toBe(0);

    // alice, bob and the bounce to s (from MAILER-DAEMON) land within the deadline
    const deadline = Date.now() + 60_000;
    const count = async (user: string) => (await store!.status(`user/${user}/INBOX`)).messages;
    while (Date.now() < deadline && ((await count('alice')) < 1 || (await count('bob')) < 1 || (await count('s')) < 1)) {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const log = existsSync(join(dir, 'maillog')) ? readFileSync(join(dir, 'maillog'), 'utf8') : '(no maillog)';
    expect([await count('alice'), await count('bob'), await count('s')], log).toEqual([1, 1, 1]);
    const alice = await store.fetch('user/alice/INBOX', 1);
    expect(alice.toString()).toContain('hello from postfix');
    expect(alice.equals(await store.fetch('user/bob/INBOX', 1))).toBe(true); // one transaction, the same bytes
    expect((await store.messageInfo('user/alice/INBOX', 1)).envelopeFrom).toBe('s@example.org');
    expect(log).toMatch(/to=<alice@example\.org>.*status=sent \(250 2\.0\.0 delivered to user\/alice\/INBOX uid 1\)/);
    expect(log).toMatch(/to=<nobody@example\.org>.*status=bounced \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 550 5\.1\.1 no such mailbox/);
    expect(log).toMatch(/to=<alice\+lists@example\.org>.*status=sent \(250 2\.0\.0 delivered to user\/alice\/INBOX uid 1\)/);
    // a full mailbox is temporary: the mail stays queued for the next try, no bounce
    expect(log).toMatch(/to=<carol@example\.org>.*dsn=4\.2\.2, status=deferred \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 452 4\.2\.2 mailbox full \(in reply to end of DATA command\)/);
    expect(await count('carol')).toBe(0);
    // one code each, the one mailstore gives (smtp-server's from the reply number alone would be 4.3.0 and 4.2.2)
    expect(log).toMatch(/to=<dave@example\.org>.*dsn=4\.2\.1, status=deferred \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 451 4\.2\.1 user dave moved to mail2\.example by xfer; route its mail there \(in reply to RCPT TO command\)/);
    expect(log).toMatch(/to=<erin@example\.org>.*dsn=4\.3\.1, status=deferred \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 452 4\.3\.1 insufficient system storage \(in reply to end of DATA command\)/);
    expect(log).not.toMatch(/said: \d{3} \d\.\d+\.\d+ \d\.\d+\.\d+ /);
    expect((await store.messageInfo('user/s/INBOX', 1)).envelopeFrom).toBe('MAILER-DAEMON');
    const stats = await store.stats();
    expect(stats.blobs).toBe(2); // the message once for alice and bob, and the bounce
  }
});

/** `postfix abort`; if that fails, SIGKILL to the master whose pid file this instance wrote. */
async function stopPostfix(dir: string): Promise<void> {
  const pidFile = join(dir, 'queue/pid/master.pid');
  const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : 0;
  const stopped = await run(postfix!, ['-c', dir, 'abort'], { timeoutMs: 10_000 });
  if (stopped.code !== 0 && pid > 1) process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 50 && pid > 1 && alive(pid); i++) await new Promise((resolve) => setTimeout(resolve, 100));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

if (why) {
  describe('LMTP from Postfix', () => {
    it(`is skipped: ${why}`, () => console.log(`skip: ${why}`));
  });
}
