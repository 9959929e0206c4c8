// Import and export fidelity (issue 18, item 10): nested folders of a Maildir or .eml tree are
// imported or reported, never silently left out; a user's tree gets the Dovecot/Cyrus layout
// (user/bob/INBOX with the folders beside it) and its owner's rights; the mbox From_ line's zone
// offset comes back on export where it can be known.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { isMailstoreError, type MailstoreError } from '../../src/errors.js';
import { exportMailbox } from '../../src/import/exporter.js';
import { importMail, type ImportOptions, type ImportSummary } from '../../src/import/importer.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { maildir, stored, withStore } from './helpers.js';
import { json, ok, requireBuilt, run, tempDir } from '../cli/helpers.js';
import { ok as okHere, run as runHere } from '../cli/in-process.js';

const body = (i: number | string) => `Message-ID: <f${i}@example.org>\nSubject: ${i}\n\nbody ${i}\n`;


async function names(store: Store): Promise<string[]> {
  return (await store.listMailboxes()).map((m) => m.name).sort();
}

/** The import with every skip collected: [summary, 'reason relative-path' lines]. */
async function importCollecting(store: Store, source: string, options: ImportOptions): Promise<[ImportSummary, string[]]> {
  const skipped: string[] = [];
  const summary = await importMail(store, source, { ...options, onSkip: (path, _error, reason) => skipped.push(`${reason} ${path.slice(source.length + 1)}`) });
  return [summary, skipped.sort()];
}

describe('nested folders are imported or reported, never silently left out', () => {
  it('Maildir: Maildir++ dot-folders and plain subdirectories that are Maildirs (LAYOUT=fs) all become child mailboxes', async () => {
    const source = maildir(join(tmpDir('src'), 'md'), { '1.inbox:2,S': body('inbox') });
    maildir(join(source, '.Sent'), { '1.sent:2,S': body('sent') });
    maildir(join(source, 'Archive'), { '1.archive:2,': body('archive') });
    maildir(join(source, 'Lists', 'kernel'), { '1.kernel:2,': body('kernel') }); // Lists itself is no Maildir
    maildir(join(source, 'Archive', '2024'), { '1.old:2,': body('old') });
    await withStore(async (store) => {
      const [summary, skipped] = await importCollecting(store, source, { mailbox: 'arc' });
      expect(skipped).toEqual([]);
      expect(summary).toMatchObject({ imported: 5, skipped: 0, layout: 'flat' });
      expect(await names(store)).toEqual(['arc', 'arc/Archive', 'arc/Archive/2024', 'arc/Lists/kernel', 'arc/Sent']);
      expect(await stored(store, 'arc/Archive/2024')).toEqual([body('old')]);
      expect(await stored(store, 'arc/Lists/kernel')).toEqual([body('kernel')]);
    });
  });

  it('Maildir: a directory that is no folder is reported as notFolder (summary and skippedItems); server state and empty directories are not', async () => {
    const source = maildir(join(tmpDir('src'), 'md'), { '1.inbox:2,': body('inbox') });
    mkdirSync(join(source, '.Broken')); // a Maildir++ name without cur/ or new/
    writeFileSync(join(source, '.Broken', '1.lost'), body('lost'));
    mkdirSync(join(source, 'attachments')); // files, but no Maildir in or below it
    writeFileSync(join(source, 'attachments', 'x.pdf'), 'pdf');
    mkdirSync(join(source, 'empty'));
    mkdirSync(join(source, 'courierimapkeywords'));
    writeFileSync(join(source, 'courierimapkeywords', ':list'), 'x');
    writeFileSync(join(source, 'dovecot-uidlist'), '3 V1 N2\n');
    maildir(join(source, '.Sent'), { '1.sent:2,': body('sent') });
    mkdirSync(join(source, '.Sent', '.hidden'));
    writeFileSync(join(source, '.Sent', '.hidden', 'm'), body('hidden'));
    await withStore(async (store) => {
      const [summary, skipped] = await importCollecting(store, source, { mailbox: 'm' });
      expect(skipped).toEqual(['notFolder .Broken', 'notFolder .Sent/.hidden', 'notFolder attachments']);
      expect(summary).toMatchObject({ imported: 2, skipped: 3, skippedReasons: { notFolder: 3 } });
      expect(summary.skippedItems.map((item) => item.code)).toEqual(['INVALID', 'INVALID', 'INVALID']);
      expect(await names(store)).toEqual(['m', 'm/Sent']);
    });
  });

  it('.eml tree: each subdirectory holding files becomes a child mailbox; --flatten puts every file into the one mailbox', async () => {
    const source = join(tmpDir('src'), 'eml');
    mkdirSync(join(source, 'Work', 'Projects', 'x'), { recursive: true });
    writeFileSync(join(source, 'a.eml'), body('a'));
    writeFileSync(join(source, 'Work', 'b.eml'), body('b'));
    writeFileSync(join(source, 'Work', 'Projects', 'x', 'c.eml'), body('c')); // Projects holds only a directory
    await withStore(async (store) => {
      const [summary, skipped] = await importCollecting(store, source, { mailbox: 'e' });
      expect(skipped).toEqual([]);
      expect(summary).toMatchObject({ format: 'eml', imported: 3, skipped: 0 });
      expect(await names(store)).toEqual(['e', 'e/Work', 'e/Work/Projects/x']);
      expect(await stored(store, 'e')).toEqual([body('a')]);
      expect(await stored(store, 'e/Work')).toEqual([body('b')]);
      expect(await stored(store, 'e/Work/Projects/x')).toEqual([body('c')]);
      expect(await importMail(store, source, { mailbox: 'flat', flatten: true })).toMatchObject({ imported: 3, skipped: 0 });
      expect((await stored(store, 'flat')).sort()).toEqual([body('a'), body('b'), body('c')]);
      expect(await names(store)).not.toContain('flat/Work');
    });
  });

  it('--flatten on a Maildir is INVALID before anything is created', async () => {
    const source = maildir(join(tmpDir('src'), 'md'), { '1.a': body('a') });
    await withStore(async (store) => {
      const error = await importMail(store, source, { mailbox: 'x', flatten: true }).catch((e: MailstoreError) => e);
      expect(isMailstoreError(error, 'INVALID'), String(error)).toBe(true);
      expect(await names(store)).toEqual([]);
    });
  });
});

describe('a user\'s tree: layout and owner', () => {
  function userMaildir(): string {
    const source = maildir(join(tmpDir('src'), 'Maildir'), { '1.inbox:2,S': body('inbox') });
    maildir(join(source, '.Sent'), { '1.sent:2,S': body('sent') });
    maildir(join(source, '.Lists.kernel'), { '1.kernel:2,': body('kernel') });
    return source;
  }

  it('under user/bob the root becomes user/bob/INBOX with the folders beside it, all bob\'s (layout user by default)', async () => {
    const source = userMaildir();
    await withStore(async (store) => {
      const summary = await importMail(store, source, { mailbox: 'user/bob' });
      expect(summary).toMatchObject({ layout: 'user', owner: 'bob', imported: 3, skipped: 0 });
      expect(summary.created.sort()).toEqual(['user/bob/INBOX', 'user/bob/Lists/kernel', 'user/bob/Sent']);
      expect(await names(store)).toEqual(['user/bob/INBOX', 'user/bob/Lists/kernel', 'user/bob/Sent']);
      expect(await stored(store, 'user/bob/INBOX')).toEqual([body('inbox')]);
      expect(await stored(store, 'user/bob/Sent')).toEqual([body('sent')]);
      // bob sees his tree: the created mailboxes carry his rights
      expect((await store.listMailboxes({ user: 'bob' })).map((m) => m.name).sort()).toEqual(['user/bob/INBOX', 'user/bob/Lists/kernel', 'user/bob/Sent']);
      expect((await store.mailbox('user/bob/Sent')).owner).toBe('bob');
    });
  });

  it('--layout flat under user/bob keeps the root as user/bob itself and the folders below it', async () => {
    const source = userMaildir();
    await withStore(async (store) => {
      expect(await importMail(store, source, { mailbox: 'user/bob', layout: 'flat' })).toMatchObject({ layout: 'flat', imported: 3 });
      expect(await names(store)).toEqual(['user/bob', 'user/bob/Lists/kernel', 'user/bob/Sent']);
      expect(await stored(store, 'user/bob')).toEqual([body('inbox')]);
    });
  });

  it('--owner gives every created mailbox of any tree its owner\'s rights; none: an empty ACL, as before', async () => {
    const source = userMaildir();
    await withStore(async (store) => {
      expect(await importMail(store, source, { mailbox: 'shared/archive', owner: 'carol' })).toMatchObject({ layout: 'flat', owner: 'carol' });
      expect((await store.listMailboxes({ user: 'carol' })).map((m) => m.name).sort())
        .toEqual(['shared/archive', 'shared/archive/Lists/kernel', 'shared/archive/Sent']);
      const summary = await importMail(store, source, { mailbox: 'noowner' });
      expect(summary.owner).toBeUndefined();
      expect(await store.getAcl('noowner/Sent')).toEqual({});
    });
  });

  it('a mailbox that exists keeps its ACL; the admin is warned that the owner has no rights on it', async () => {
    const source = userMaildir();
    await withStore(async (store) => {
      await store.createMailbox('user/bob/INBOX', { acl: { admin: 'lrswipkxtea' } });
      const warnings: string[] = [];
      await importMail(store, source, { mailbox: 'user/bob', onWarning: (text) => warnings.push(text) });
      expect(await store.getAcl('user/bob/INBOX')).toEqual({ admin: 'aeiklprstwx' });
      expect(warnings.some((w) => w.includes('user/bob/INBOX') && w.includes('bob has no rights'))).toBe(true);
      expect((await store.getAcl('user/bob/Sent')).bob).toBe('aeiklnprstwx');
    });
  });

  it('an invalid --owner is INVALID before anything is read or created', async () => {
    const source = userMaildir();
    await withStore(async (store) => {
      const error = await importMail(store, source, { mailbox: 'x', owner: 'bad\u0000name' }).catch((e: MailstoreError) => e);
      expect(isMailstoreError(error, 'INVALID'), String(error)).toBe(true);
      expect(await names(store)).toEqual([]);
    });
  });
});

describe('mbox: the From_ line on export', () => {
  // bob's own delivery agent wrote his From_ lines in his zone with the envelope sender, which it
  // also put in Return-Path; the Date header names the same second for the first two messages.
  const mbox = [
    'From bob@example.org Sat Nov 28 10:45:25 2026 +0100',
    'Return-Path: <bob@example.org>',
    'Date: Sat, 28 Nov 2026 10:45:25 +0100',
    'Subject: one',
    '',
    'one',
    '',
    'From alice@example.net Sun Nov 29 18:00:00 2026 -0500',
    'Return-Path: <alice@example.net>',
    'Date: Sun, 29 Nov 2026 18:00:00 -0500',
    'Subject: two',
    '',
    'two',
    '',
    'From MAILER-DAEMON Mon Nov 30 12:00:00 2026',
    'Return-Path: <>',
    'Date: Mon, 30 Nov 2026 07:59:00 -0500',
    'Subject: three, whose Date is not its internal date',
    '',
    'three',
    '',
  ].join('\n');

  it('keeps each From_ line\'s sender and zone: the default export and --mbox-sender (for messages without one) give back the identical file', async () => {
    const dir = tmpDir('mbox');
    const source = join(dir, 'bob.mbox');
    writeFileSync(source, mbox);
    await withStore(async (store) => {
      expect(await importMail(store, source, { mailbox: 'mb' })).toMatchObject({ format: 'mbox', imported: 3 });
      await exportMailbox(store, 'mb', { format: 'mbox', out: join(dir, 'same.mbox') });
      expect(readFileSync(join(dir, 'same.mbox'), 'latin1')).toBe(mbox);
      await exportMailbox(store, 'mb', { format: 'mbox', out: join(dir, 'sender.mbox'), mboxSender: 'postmaster@example.org' });
      expect(readFileSync(join(dir, 'sender.mbox'), 'latin1')).toBe(mbox);
      const error = await exportMailbox(store, 'mb', { format: 'mbox', out: join(dir, 'bad.mbox'), mboxSender: 'two words' }).catch((e: MailstoreError) => e);
      expect(isMailstoreError(error, 'INVALID'), String(error)).toBe(true);
    });
  });

  it('byte-exact round trip of From_ lines whose senders and zones differ from the Return-Path and Date headers', async () => {
    const differing = [
      'From list-bounces+bob=example.org@lists.example.net Tue Dec  1 09:15:00 2026 +0900',
      'Return-Path: <someone-else@example.com>',
      'Date: Tue, 1 Dec 2026 01:15:00 +0100', // the same instant, written in another zone
      'Subject: one',
      '',
      'one',
      '',
      'From carol@example.com Wed Dec  2 23:59:59 2026 -0330',
      'Date: Wed, 2 Dec 2026 10:00:00 +0200', // another instant altogether
      'Subject: two',
      '',
      'two',
      '',
      'From <> Thu Dec  3 00:00:00 2026',
      'Subject: three, in UTC, no Date header',
      '',
      'three',
      '',
      'From SRS0=abc=XY=example.org=dave@relay.example Fri Dec  4 14:30:00 2026 +0545',
      'Return-Path: <>',
      'Subject: four, Nepal',
      '',
      'four',
      '',
    ].join('\n');
    const dir = tmpDir('mbox');
    const source = join(dir, 'differing.mbox');
    writeFileSync(source, differing);
    await withStore(async (store) => {
      expect(await importMail(store, source, { mailbox: 'mb' })).toMatchObject({ imported: 4 });
      const infos = [];
      for await (const info of store.messages('mb')) infos.push([info.envelopeFrom, info.dateZoneMinutes]);
      expect(infos).toEqual([
        ['list-bounces+bob=example.org@lists.example.net', 540], ['carol@example.com', -210], ['<>', undefined], ['SRS0=abc=XY=example.org=dave@relay.example', 345],
      ]);
      for (const mboxSender of [undefined, 'return-path']) {
        const out = join(dir, `out-${mboxSender ?? 'default'}.mbox`);
        await exportMailbox(store, 'mb', { format: 'mbox', out, mboxSender });
        expect(readFileSync(out, 'latin1')).toBe(differing);
      }
      // the stored fields survive a copy into another mailbox and its export
      await store.createMailbox('copy');
      await store.copy('mb', [1, 2, 3, 4], 'copy');
      await exportMailbox(store, 'copy', { format: 'mbox', out: join(dir, 'copy.mbox') });
      expect(readFileSync(join(dir, 'copy.mbox'), 'latin1')).toBe(differing);
    });
  });

  it('a From_ line without a zone takes the Date header\'s when it names the same second; a message without a stored sender or zone falls back', async () => {
    const dir = tmpDir('mbox');
    const source = join(dir, 'utc.mbox');
    writeFileSync(source, 'From bob@example.org Sat Nov 28 09:45:25 2026\nDate: Sat, 28 Nov 2026 10:45:25 +0100\nSubject: x\n\nx\n');
    await withStore(async (store) => {
      await importMail(store, source, { mailbox: 'mb' });
      expect(await store.messageInfo('mb', 1)).toMatchObject({ envelopeFrom: 'bob@example.org', dateZoneMinutes: 60 });
      const appended = Buffer.from('Return-Path: <eve@example.org>\nDate: Sun, 29 Nov 2026 18:00:00 -0500\nSubject: y\n\ny\n');
      await store.append('mb', appended, { internalDate: new Date('2026-11-29T23:00:00Z') });
      const info = await store.messageInfo('mb', 2);
      expect(Object.keys(info)).not.toContain('envelopeFrom');
      expect(Object.keys(info)).not.toContain('dateZoneMinutes');
      const fromLines = async (name: string, mboxSender?: string) => {
        await exportMailbox(store, 'mb', { format: 'mbox', out: join(dir, name), mboxSender });
        return readFileSync(join(dir, name), 'latin1').split('\n').filter((line) => line.startsWith('From '));
      };
      expect(await fromLines('a.mbox')).toEqual(['From bob@example.org Sat Nov 28 10:45:25 2026 +0100', 'From MAILER-DAEMON Sun Nov 29 18:00:00 2026 -0500']);
      expect(await fromLines('b.mbox', 'return-path')).toEqual(['From bob@example.org Sat Nov 28 10:45:25 2026 +0100', 'From eve@example.org Sun Nov 29 18:00:00 2026 -0500']);
    });
  });
});

describe('Maildir: new/ stays new/', () => {
  it('a message imported from new/ is exported to new/ (while it has no flags), the others to cur/', async () => {
    const dir = tmpDir('md-new');
    const source = maildir(join(dir, 'src'), { '1700000001.a:2,S': body('seen'), '1700000002.b:2,': body('unflagged') });
    writeFileSync(join(source, 'new', '1700000003.c'), body('fresh'));
    writeFileSync(join(source, 'new', '1700000004.d'), body('fresh too'));
    await withStore(async (store) => {
      expect(await importMail(store, source, { mailbox: 'md' })).toMatchObject({ imported: 4 });
      const stored = [];
      for await (const info of store.messages('md')) stored.push([info.flags, info.recent]);
      expect(stored).toEqual([[['\\Seen'], undefined], [[], undefined], [[], true], [[], true]]);
      await store.setFlags('md', 4, { add: ['\\Flagged'] }); // a flag a name in new/ cannot carry: cur/
      const out = join(dir, 'out');
      await exportMailbox(store, 'md', { format: 'maildir', out });
      const list = (sub: string) => readdirSync(join(out, sub)).map((name) => readFileSync(join(out, sub, name), 'latin1')).sort();
      expect(list('new')).toEqual([body('fresh')]);
      expect(list('cur')).toEqual([body('fresh too'), body('seen'), body('unflagged')].sort());
      // into an existing Maildir too, and back in: new/ is new/ again
      await exportMailbox(store, 'md', { format: 'maildir', out: join(dir, 'out2') });
      await store.createMailbox('again');
      await importMail(store, join(dir, 'out2'), { mailbox: 'again' });
      const again = [];
      for await (const info of store.messages('again')) again.push(info.recent === true);
      expect(again.filter(Boolean).length).toBe(1);
    });
  });
});

describe('resuming an import made before the user layout was the default', () => {
  it('a source imported into user/bob itself is REFUSED under the new default, resumed with --layout flat, nothing added twice', async () => {
    const source = maildir(join(tmpDir('src'), 'Maildir'), { '1.a:2,': body('a'), '2.b:2,': body('b') });
    await withStore(async (store) => {
      await importMail(store, source, { mailbox: 'user/bob', layout: 'flat' });
      const error = await importMail(store, source, { mailbox: 'user/bob' }).catch((e: MailstoreError) => e);
      expect(isMailstoreError(error, 'REFUSED'), String(error)).toBe(true);
      expect((error as MailstoreError).message).toContain('--layout flat');
      expect(await names(store)).toEqual(['user/bob']);
      expect(await importMail(store, source, { mailbox: 'user/bob', layout: 'flat' })).toMatchObject({ imported: 0, alreadyImported: 2 });
      expect(await stored(store, 'user/bob')).toEqual([body('a'), body('b')]);
    });
  });
});

describe('the CLI says the layout and the owner', () => {
  beforeAll(requireBuilt);

  it('import --help explains --layout and --flatten; --json reports layout, owner, created and notFolder skips', async () => {
    const help = await ok(['import', '--help']);
    for (const text of ['--layout', 'user/bob/INBOX', 'LAYOUT=fs', '--flatten', 'notFolder', '--owner']) expect(help).toContain(text);
    const store = join(tempDir(), 'store');
    await ok(['init'], { store });
    const source = maildir(join(tmpDir('src'), 'Maildir'), { '1.inbox:2,S': body('inbox') });
    maildir(join(source, 'Sent'), { '1.sent:2,S': body('sent') });
    mkdirSync(join(source, 'junk'));
    writeFileSync(join(source, 'junk', 'x'), 'x');
    const result = await run(['import', source, '--mailbox', 'user/bob', '--json'], { store });
    expect(result.code, result.stderr).toBe(1); // done, one directory left out
    const summary = JSON.parse(result.stdout.toString());
    expect(summary).toMatchObject({ layout: 'user', owner: 'bob', imported: 2, skipped: 1, skippedReasons: { notFolder: 1 } });
    expect(summary.created.sort()).toEqual(['user/bob/INBOX', 'user/bob/Sent']);
    expect(result.stderr.toString()).toContain('skipped (notFolder)');
    const listed = await json<{ name: string }[]>(['mailbox', 'list', '--user', 'bob'], { store });
    expect(listed.map((m) => m.name).sort()).toEqual(['user/bob/INBOX', 'user/bob/Sent']);
    const text = await run(['import', source, '--mailbox', 'arc', '--layout', 'flat'], { store });
    expect(text.stdout.toString()).toContain('layout flat; 2 mailboxes created with an empty ACL (no --owner)');
    expect(await ok(['export', '--help'])).toContain('--mbox-sender');
  });
});

describe('Maildir export: keywords past the 26 letters', () => {
  beforeAll(requireBuilt);

  it('a keyword a Maildir cannot name (a 27th in a folder) is reported with its message, and the export exits 1', async () => {
    // dovecot-keywords has letters a-z only: the 27th keyword was left out of the file name without a word, exit 0
    const store = join(tempDir(), 'store');
    await okHere(['init'], { store });
    await okHere(['mailbox', 'create', 'box'], { store });
    const keywords = Array.from({ length: 27 }, (_, i) => `kw${i}`);
    const message = join(tempDir(), 'm.eml');
    writeFileSync(message, body('k'));
    await okHere(['append', 'box', message, '--flags', keywords.slice(0, 20).join(',')], { store });
    await okHere(['append', 'box', message, '--flags', ['\\Seen', ...keywords.slice(20)].join(',')], { store });
    const out = join(tempDir(), 'Maildir');
    const result = await runHere(['export', 'box', '--format', 'maildir', '--out', out, '--json'], { store });
    expect(result.code, result.stderr.toString()).toBe(1);
    expect(result.stderr.toString()).toContain('box uid 2: kept no keyword kw26');
    const summary = JSON.parse(result.stdout.toString());
    expect(summary).toMatchObject({ exported: 2, keywordsDropped: [{ mailbox: 'box', uid: 2, keywords: ['kw26'] }] });
    const names = readdirSync(join(out, 'cur'));
    expect(names).toHaveLength(2); // every message is there, with every other flag
    // by their flags, not by name: a name starts with the export's time and pid, so its order is not the uids'
    const infos = names.map((name) => name.slice(name.lastIndexOf(':2,') + 3)).sort();
    expect(infos[0]).toMatch(/^S[u-z]{6}$/);
    expect(infos[1]).toMatch(/^[a-t]{20}$/);
  });
});

describe('Maildir keywords without names', () => {
  it('keyword letters with no dovecot-keywords entry (a Maildir copied without it, or kept in Dovecot\'s CONTROL directory) are named in a warning', async () => {
    // they were dropped without a word: every keyword of the folder lost, the import clean
    const source = maildir(join(tmpDir('src'), 'md'), { '1700000001.a:2,Sab': body('a'), '1700000002.b:2,Sc': body('b'), '1700000003.c:2,S': body('c') });
    writeFileSync(join(source, 'dovecot-keywords'), '1 $Junk\n');
    await withStore(async (store) => {
      const warnings: string[] = [];
      const summary = await importMail(store, source, { mailbox: 'box', onWarning: (text) => warnings.push(text) });
      expect(summary).toMatchObject({ imported: 3, skipped: 0 });
      expect(warnings).toEqual([`${source}: keyword letters a, c of 2 messages have no name in dovecot-keywords; those keywords were not imported`]);
      const flags = [];
      for await (const info of store.messages('box')) flags.push(info.flags);
      expect(flags).toEqual([['$Junk', '\\Seen'], ['\\Seen'], ['\\Seen']]);
    });
  });
});

describe('a message whose source gives it no date', () => {
  it('an .eml file, or an mbox message whose From_ line has no date, is dated by its Date header (else the import time)', async () => {
    // they all got the time of the import: a folder of saved .eml files came in as received today
    const dir = tmpDir('src');
    mkdirSync(join(dir, 'emls'));
    writeFileSync(join(dir, 'emls', '1.eml'), 'Date: Tue, 3 Mar 2020 10:00:00 +0100\nSubject: a\n\na\n');
    writeFileSync(join(dir, 'emls', '2.eml'), 'Date: not a date\nSubject: b\n\nb\n');
    writeFileSync(join(dir, 'one.mbox'), 'From foo@example.org\nDate: Wed, 4 Mar 2020 11:00:00 -0500\nSubject: c\n\nc\n\n'
      + 'From bar@example.org Thu Mar  5 12:00:00 2020\nDate: Fri, 6 Mar 2020 00:00:00 +0000\nSubject: d\n\nd\n');
    await withStore(async (store) => {
      const started = Date.now();
      await importMail(store, join(dir, 'emls'), { mailbox: 'e' });
      await importMail(store, join(dir, 'one.mbox'), { mailbox: 'm' });
      const dates = async (mailbox: string) => {
        const out = [];
        for await (const info of store.messages(mailbox)) out.push(info.internalDate.getTime());
        return out;
      };
      const [eml, mbox] = [await dates('e'), await dates('m')];
      expect(eml[0]).toBe(Date.UTC(2020, 2, 3, 9));
      expect(eml[1]).toBeGreaterThanOrEqual(started);
      expect(mbox).toEqual([Date.UTC(2020, 2, 4, 16), Date.UTC(2020, 2, 5, 12)]); // a From_ line's own date comes first
    });
  });
});
