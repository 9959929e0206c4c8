import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { nodeFileSystem as fs } from '../../src/fs/node-fs.js';
import type { MailstoreError } from '../../src/errors.js';
import {
  MaildirWriter, compareNatural, decodeModifiedUtf7, encodeModifiedUtf7, flagsFromMaildirInfo, folderFromMaildirPlusPlus,
  listMaildirFolders, maildirInfoFromFlags, maildirPlusPlusFromFolder, parseMaildirName, readMaildir,
} from '../../src/formats/maildir.js';
import { importLimits } from '../../src/limits.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'mailstore-maildir-'));

function makeMaildir(dir: string): string {
  for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(dir, sub), { recursive: true });
  return dir;
}

async function readAll(dir: string, onSkip?: (path: string, error: MailstoreError) => void) {
  const out = [];
  for await (const message of readMaildir(fs, dir, { onSkip })) out.push(message);
  return out;
}

describe('Maildir flags', () => {
  it('maps info letters to IMAP flags', () => {
    expect(flagsFromMaildirInfo('DFPRST')).toEqual(['$Forwarded', '\\Answered', '\\Deleted', '\\Draft', '\\Flagged', '\\Seen']);
    expect(flagsFromMaildirInfo('Sab', ['work'])).toEqual(['\\Seen', 'work']);
    expect(flagsFromMaildirInfo('XZ')).toEqual([]);
  });

  it('maps IMAP flags to sorted info letters', () => {
    expect(maildirInfoFromFlags(['\\Seen', '\\Draft', '\\Answered', '\\Flagged', '\\Deleted', '$Forwarded'])).toBe('DFPRST');
    expect(maildirInfoFromFlags(['\\seen', '\\Recent', '$Junk'])).toBe('S');
    expect(maildirInfoFromFlags(['$Junk', '\\Seen'], (k) => (k === '$Junk' ? 'b' : undefined))).toBe('Sb');
  });

  it('parses names with :2, and !2, info', () => {
    expect(parseMaildirName('1700000000.M1P2Q3.host:2,RS')).toEqual({ unique: '1700000000.M1P2Q3.host', info: 'RS', timestampSeconds: 1700000000 });
    expect(parseMaildirName('1700000000.host!2,S')).toMatchObject({ unique: '1700000000.host', info: 'S' });
    expect(parseMaildirName('plain')).toEqual({ unique: 'plain', info: undefined, timestampSeconds: undefined });
  });

  it('orders names with unpadded counters naturally', () => {
    const names = ['1.M1000P1Q10.x', '1.M999P1Q9.x', '1.M999P1Q10.x', '1.M1000P1Q9.x'];
    expect(names.sort(compareNatural)).toEqual(['1.M999P1Q9.x', '1.M999P1Q10.x', '1.M1000P1Q9.x', '1.M1000P1Q10.x']);
  });
});

describe('readMaildir', () => {
  it('reads cur/ and new/ in timestamp order, skips tmp/ and hidden files, maps flags', async () => {
    const dir = makeMaildir(tmp());
    writeFileSync(join(dir, 'cur', '1700000002.b.host:2,FRS'), 'two');
    writeFileSync(join(dir, 'new', '1700000001.a.host'), 'one');
    writeFileSync(join(dir, 'new', '1700000003.c.host:2,S'), 'three');
    writeFileSync(join(dir, 'cur', '1700000004.d.host!2,Tab'), 'four');
    writeFileSync(join(dir, 'cur', '.hidden'), 'x');
    writeFileSync(join(dir, 'tmp', '1700000000.t.host'), 'tmp');
    writeFileSync(join(dir, 'dovecot-keywords'), '0 $Junk\n1 work\n');
    const messages = await readAll(dir);
    expect(messages.map((m) => m.bytes.toString())).toEqual(['one', 'two', 'three', 'four']);
    expect(messages.map((m) => m.flags)).toEqual([[], ['\\Answered', '\\Flagged', '\\Seen'], ['\\Seen'], ['$Junk', '\\Deleted', 'work']]);
    expect(messages[0]!.name).toBe('1700000001.a.host');
    expect(messages[0]!.path).toBe(join(dir, 'new', '1700000001.a.host'));
  });

  it('a message a mail client moves from new/ to cur/ while the folder is listed is read, or reported, never silently missed', async () => {
    const dir = makeMaildir(tmp());
    writeFileSync(join(dir, 'cur', '1700000000.a.host:2,S'), 'listed in cur');
    writeFileSync(join(dir, 'new', '1700000001.m.host'), 'moved');
    // the client marks it read the moment cur/ has been listed (a listing that holds the cur/ file)
    let moved = false;
    const moving = new Proxy(fs, {
      get(target, property, receiver) {
        if (property !== 'readdir') return Reflect.get(target, property, receiver);
        return async (path: string) => {
          const names = await target.readdir(path);
          if (!moved && names.includes('1700000000.a.host:2,S')) {
            moved = true;
            renameSync(join(dir, 'new', '1700000001.m.host'), join(dir, 'cur', '1700000001.m.host:2,S'));
          }
          return names;
        };
      },
    });
    const read: string[] = [];
    const skipped: string[] = [];
    for await (const m of readMaildir(moving, dir, { onSkip: (path) => skipped.push(path) })) read.push(m.bytes.toString());
    expect(moved).toBe(true);
    expect(read[0]).toBe('listed in cur');
    expect(read.includes('moved') || skipped.some((path) => path.includes('1700000001.m.host')), `read ${JSON.stringify(read)}, skipped ${JSON.stringify(skipped)}`).toBe(true);
  });

  it('the same message in new/ and cur/ (moved between the two listings) is one entry, the one in cur/', async () => {
    const dir = makeMaildir(tmp());
    writeFileSync(join(dir, 'new', '1700000001.m.host'), 'one');
    writeFileSync(join(dir, 'cur', '1700000001.m.host:2,S'), 'one');
    writeFileSync(join(dir, 'new', '1700000002.n.host'), 'two');
    const messages = await readAll(dir);
    expect(messages.map((m) => [m.name, m.index])).toEqual([['1700000001.m.host:2,S', 0], ['1700000002.n.host', 1]]);
  });

  it('drops unmapped keyword letters and takes the internal date from the mtime', async () => {
    const dir = makeMaildir(tmp());
    const path = join(dir, 'cur', '1700000000.x:2,Sa');
    writeFileSync(path, 'm');
    utimesSync(path, new Date('2020-02-02T02:02:02Z'), new Date('2020-02-02T02:02:02Z'));
    const [message] = await readAll(dir);
    expect(message!.flags).toEqual(['\\Seen']);
    expect(message!.internalDate).toEqual(new Date('2020-02-02T02:02:02Z'));
  });

  it('reads back the millisecond an export wrote (mtimeMs is a float: 38.439 s came back as 38.438999 and was cut to .438)', async () => {
    const dir = makeMaildir(tmp());
    const dates = ['2026-12-05T13:00:38.439Z', '2024-02-29T23:59:59.999Z', '2001-09-09T01:46:40.001Z'].map((d) => new Date(d));
    for (const [i, date] of dates.entries()) {
      const path = join(dir, 'cur', `${1700000000 + i}.x:2,`);
      writeFileSync(path, `m${i}`);
      utimesSync(path, date, date);
    }
    expect((await readAll(dir)).map((m) => m.internalDate)).toEqual(dates);
  });

  it('an internal date of the epoch (a Date header of 1 Jan 1970 00:00:00, common in broken mail) exported and read back is the epoch, not the time of the export', async () => {
    const dir = join(tmp(), 'Maildir');
    const writer = await MaildirWriter.create(fs, dir);
    const dates = ['1970-01-01T00:00:00.000Z', '1970-01-01T00:00:00.001Z', '2026-12-05T13:00:38.439Z'].map((d) => new Date(d));
    for (const [i, date] of dates.entries()) await writer.append(Buffer.from(`m${i}`), { internalDate: date });
    await writer.close();
    expect((await readAll(dir)).map((m) => m.internalDate)).toEqual(dates);
  });

  it('reports a directory named like a message and a dangling symlink through onSkip, and goes on', async () => {
    const dir = makeMaildir(tmp());
    writeFileSync(join(dir, 'cur', '1.a:2,S'), 'first');
    mkdirSync(join(dir, 'cur', '2.b:2,S'));
    symlinkSync(join(dir, 'nowhere'), join(dir, 'cur', '3.c:2,S'));
    writeFileSync(join(dir, 'cur', '4.d:2,S'), 'last');
    const skipped: [string, string][] = [];
    const messages = await readAll(dir, (path, error) => skipped.push([path, error.code]));
    expect(messages.map((m) => m.bytes.toString())).toEqual(['first', 'last']);
    expect(skipped).toEqual([[join(dir, 'cur', '2.b:2,S'), 'INVALID'], [join(dir, 'cur', '3.c:2,S'), 'INVALID']]); // a link is never followed
  });

  it('throws the first unreadable file when there is no onSkip', async () => {
    const dir = makeMaildir(tmp());
    mkdirSync(join(dir, 'cur', '1.a:2,S'));
    await expect(readAll(dir)).rejects.toMatchObject({ code: 'INVALID', path: join(dir, 'cur', '1.a:2,S') });
  });

  it('refuses a directory that is not a Maildir', async () => {
    await expect(readAll(tmp())).rejects.toMatchObject({ code: 'INVALID' });
  });
});

describe('MaildirWriter', () => {
  it('writes durably into cur/ with sorted info letters and reads back the same bytes, flags and order', async () => {
    const dir = join(tmp(), 'Maildir');
    const writer = await MaildirWriter.create(fs, dir);
    const input = [
      { bytes: 'a\r\nb', flags: ['\\Seen', '\\Answered', '$Forwarded'] },
      { bytes: '', flags: [] },
      { bytes: 'no newline', flags: ['\\Draft', 'work', '$Junk'] },
      ...Array.from({ length: 30 }, (_, i) => ({ bytes: `message ${i}\n`, flags: i % 2 ? ['\\Flagged', 'work'] : ['\\Deleted'] })),
    ];
    const paths = [];
    for (const { bytes, flags } of input) paths.push(await writer.append(Buffer.from(bytes), { flags }));
    await writer.close();
    expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
    expect(paths[0]).toMatch(/\/cur\/\d+\.M\d+P\d+Q1\.mailstore:2,PRSa$/);
    expect(paths[2]).toMatch(/:2,Dbc$/);
    expect(readFileSync(join(dir, 'dovecot-keywords'), 'utf8')).toBe('0 $Forwarded\n1 work\n2 $Junk\n');
    const messages = await readAll(dir);
    expect(messages.map((m) => m.bytes.toString())).toEqual(input.map((m) => m.bytes));
    expect(messages.map((m) => m.flags)).toEqual(input.map((m) => [...m.flags].sort()));
  });

  it('keeps existing mail and keywords when opened again', async () => {
    const dir = tmp();
    const first = await MaildirWriter.create(fs, dir);
    await first.append(Buffer.from('1'), { flags: ['x'] });
    const second = await MaildirWriter.create(fs, dir);
    const path = await second.append(Buffer.from('2'), { flags: ['y', 'x'] });
    expect(path).toMatch(/:2,ab$/);
    expect((await readAll(dir)).map((m) => m.flags)).toEqual([['x'], ['x', 'y']]);
  });

  it('$Forwarded is P and a dovecot-keywords keyword: Dovecot reads only the keyword, other readers only P', async () => {
    // Dovecot 2.3 ignores P and keeps $Forwarded as a keyword (doveadm flags add '$Forwarded' names the file :2,a),
    // so an export with P alone lost the flag for every Dovecot user; each reader now finds the one it knows
    const dir = tmp();
    const writer = await MaildirWriter.create(fs, dir);
    const path = await writer.append(Buffer.from('1'), { flags: ['$Forwarded', '\\Seen'] });
    expect(path).toMatch(/:2,PSa$/);
    expect(readFileSync(join(dir, 'dovecot-keywords'), 'utf8')).toBe('0 $Forwarded\n');
    expect((await readAll(dir)).map((m) => m.flags)).toEqual([['$Forwarded', '\\Seen']]);
    expect(flagsFromMaildirInfo('a', ['$Forwarded'])).toEqual(['$Forwarded']);
  });

  it('two writers of one process never name two messages alike, and a name taken is never replaced', async () => {
    // each writer counted its own microseconds and Q from 1: two exports into one Maildir within a
    // millisecond named their first messages alike, and the rename into cur/ replaced the first
    const dir = tmp();
    const now = vi.spyOn(Date, 'now').mockReturnValue(1_796_516_514_646);
    try {
      const first = await MaildirWriter.create(fs, dir);
      const second = await MaildirWriter.create(fs, dir);
      const paths = [await first.append(Buffer.from('one')), await second.append(Buffer.from('two')), await first.append(Buffer.from('three'), { recent: true })];
      expect(new Set(paths.map((path) => parseMaildirName(path.slice(path.lastIndexOf('/') + 1)).unique)).size).toBe(3);
      expect((await readAll(dir)).map((m) => m.bytes.toString()).sort()).toEqual(['one', 'three', 'two']);
      // a name taken all the same (another host's process, same pid and microsecond) fails the append, EXISTS, and is kept
      const later = Math.floor(performance.timeOrigin + performance.now()); // the real clock: Date.now is mocked
      now.mockReturnValue(later + 1e9);
      const micros = (later + 1e9) * 1000;
      const taken = join(dir, 'cur', `${Math.floor(micros / 1e6)}.M${micros % 1e6}P${process.pid}Q1.mailstore:2,`);
      writeFileSync(taken, 'theirs');
      const fourth = await MaildirWriter.create(fs, dir);
      await expect(fourth.append(Buffer.from('ours'))).rejects.toMatchObject({ code: 'EXISTS' });
      expect(readFileSync(taken, 'utf8')).toBe('theirs');
      expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
    } finally {
      now.mockRestore();
    }
  });

  it('refuses appends after close', async () => {
    const writer = await MaildirWriter.create(fs, tmp());
    await writer.close();
    await expect(writer.append(Buffer.from('x'))).rejects.toMatchObject({ code: 'CLOSED' });
  });
});

describe('Maildir++ folders', () => {
  it('lists the INBOX and dot-folders, decoding modified UTF-7', async () => {
    const root = makeMaildir(tmp());
    for (const name of ['.Sent', '.Lists.kernel', '.Entw&APw-rfe', '.&ZeVnLIqe-', '.Tom &- Jerry']) makeMaildir(join(root, name));
    mkdirSync(join(root, '.NotAMaildir'));
    writeFileSync(join(root, '.file'), 'x');
    mkdirSync(join(root, 'Other'));
    const folders = await listMaildirFolders(fs, root);
    expect(folders).toEqual([
      { folder: '', path: root },
      { folder: 'Entwürfe', path: join(root, '.Entw&APw-rfe') },
      { folder: 'Lists/kernel', path: join(root, '.Lists.kernel') },
      { folder: 'Sent', path: join(root, '.Sent') },
      { folder: 'Tom & Jerry', path: join(root, '.Tom &- Jerry') },
      { folder: '日本語', path: join(root, '.&ZeVnLIqe-') },
    ]);
  });

  it('reports undecodable folder names through onSkip', async () => {
    const root = makeMaildir(tmp());
    makeMaildir(join(root, '.Bad&AAA'));
    makeMaildir(join(root, '.a..b'));
    makeMaildir(join(root, '.Good'));
    const skipped: string[] = [];
    const folders = await listMaildirFolders(fs, root, { onSkip: (path, error) => skipped.push(`${path} ${error.code}`) });
    expect(folders.map((f) => f.folder)).toEqual(['', 'Good']);
    expect(skipped.sort()).toEqual([`${join(root, '.Bad&AAA')} INVALID`, `${join(root, '.a..b')} INVALID`]);
  });

  it('encodes and decodes modified UTF-7 both ways', () => {
    for (const name of ['Entwürfe', '日本語', 'Tom & Jerry', 'plain', '~peter/mail/台北/日本語', 'a\u{1F600}b', '&&']) {
      expect(decodeModifiedUtf7(encodeModifiedUtf7(name))).toBe(name);
    }
    expect(encodeModifiedUtf7('Entwürfe')).toBe('Entw&APw-rfe');
    expect(encodeModifiedUtf7('~peter/mail/台北/日本語')).toBe('~peter/mail/&U,BTFw-/&ZeVnLIqe-');
    expect(() => decodeModifiedUtf7('&ZeVn')).toThrow(/modified UTF-7/);
    expect(() => decodeModifiedUtf7('&Z!-')).toThrow(/modified UTF-7/);
  });

  it('maps folder names to Maildir++ directory names and back', () => {
    expect(maildirPlusPlusFromFolder('Lists/kernel')).toBe('.Lists.kernel');
    expect(maildirPlusPlusFromFolder('Entwürfe/Alt')).toBe('.Entw&APw-rfe.Alt');
    expect(folderFromMaildirPlusPlus('.Entw&APw-rfe.Alt')).toBe('Entwürfe/Alt');
    expect(() => maildirPlusPlusFromFolder('a.b')).toThrow(expect.objectContaining({ code: 'INVALID' }));
    expect(() => maildirPlusPlusFromFolder('a//b')).toThrow(expect.objectContaining({ code: 'INVALID' }));
    expect(() => folderFromMaildirPlusPlus('.&AC8-')).toThrow(expect.objectContaining({ code: 'INVALID' }));
    // one directory name for the whole path: at most 255 bytes (NAME_MAX), modified UTF-7 and all
    expect(maildirPlusPlusFromFolder('x'.repeat(254))).toBe(`.${'x'.repeat(254)}`);
    expect(() => maildirPlusPlusFromFolder('x'.repeat(255))).toThrow(expect.objectContaining({ code: 'INVALID' }));
    expect(() => maildirPlusPlusFromFolder(`${'x'.repeat(200)}/${'y'.repeat(60)}`)).toThrow(expect.objectContaining({ code: 'INVALID' }));
    expect(() => maildirPlusPlusFromFolder('日'.repeat(95))).toThrow(expect.objectContaining({ code: 'INVALID' }));
  });
});

describe('MaildirWriter: new/ (issue 18 item 10)', () => {
  it('recent: a message without flags goes to new/ named without info and reads back unseen; with flags it stays in cur/', async () => {
    const dir = join(tmp(), 'Maildir');
    const writer = await MaildirWriter.create(fs, dir);
    const fresh = await writer.append(Buffer.from('fresh'), { recent: true });
    const flagged = await writer.append(Buffer.from('flagged'), { recent: true, flags: ['\\Flagged'] });
    const old = await writer.append(Buffer.from('old'));
    await writer.close();
    expect(fresh).toMatch(/\/new\/\d+\.M\d+P\d+Q1\.mailstore$/);
    expect(flagged).toMatch(/\/cur\/.*:2,F$/);
    expect(old).toMatch(/\/cur\/.*:2,$/);
    expect(readdirSync(join(dir, 'new'))).toHaveLength(1);
    const messages = await readAll(dir);
    expect(messages.map((m) => [m.bytes.toString(), m.flags])).toEqual([['fresh', []], ['flagged', ['\\Flagged']], ['old', []]]);
  });
});

describe('Maildir folders below the root (issue 18 item 10)', () => {
  it('plain subdirectories that are Maildirs are folders, mUTF-7 decoded, at any depth; parents without cur/ are not', async () => {
    const root = makeMaildir(tmp());
    makeMaildir(join(root, 'Sent'));
    makeMaildir(join(root, 'Lists', 'kernel'));
    makeMaildir(join(root, 'Entw&APw-rfe', 'Alt'));
    makeMaildir(join(root, '.Work'));
    makeMaildir(join(root, '.Work', 'Done')); // a plain child of a Maildir++ folder
    const skipped: string[] = [];
    const folders = await listMaildirFolders(fs, root, { onSkip: (path, _e, reason) => skipped.push(`${reason} ${path}`) });
    expect(skipped).toEqual([]);
    expect(folders.map((f) => [f.folder, f.path.slice(root.length)])).toEqual([
      ['', ''],
      ['Entwürfe/Alt', '/Entw&APw-rfe/Alt'],
      ['Lists/kernel', '/Lists/kernel'],
      ['Sent', '/Sent'],
      ['Work', '/.Work'],
      ['Work/Done', '/.Work/Done'],
    ]);
  });

  it('reports (notFolder) directories holding entries but no folder, links as symlink; empty and server directories are not reported', async () => {
    const root = makeMaildir(tmp());
    mkdirSync(join(root, '.NoCur'));
    writeFileSync(join(root, '.NoCur', 'm'), 'x');
    mkdirSync(join(root, 'stuff', 'deeper'), { recursive: true });
    writeFileSync(join(root, 'stuff', 'deeper', 'm'), 'x');
    mkdirSync(join(root, 'empty'));
    mkdirSync(join(root, '.EmptyDot'));
    mkdirSync(join(root, 'courierimapkeywords'));
    writeFileSync(join(root, 'courierimapkeywords', ':list'), 'x');
    symlinkSync(tmp(), join(root, 'Linked'));
    const skipped: string[] = [];
    const folders = await listMaildirFolders(fs, root, { onSkip: (path, error, reason) => skipped.push(`${reason} ${error.code} ${path.slice(root.length)}`) });
    expect(folders.map((f) => f.folder)).toEqual(['']);
    expect(skipped.sort()).toEqual(['notFolder INVALID /.NoCur', 'notFolder INVALID /stuff', 'symlink INVALID /Linked']);
  });

  it('a folder nested deeper than importLimits.folderDepthMax is reported, not walked', async () => {
    const root = makeMaildir(tmp());
    const parts = Array.from({ length: importLimits.folderDepthMax + 1 }, (_, i) => `d${i}`);
    makeMaildir(join(root, ...parts));
    const skipped: string[] = [];
    const folders = await listMaildirFolders(fs, root, { onSkip: (path, _e, reason) => skipped.push(`${reason} ${path.slice(root.length + 1)}`) });
    expect(folders.map((f) => f.folder)).toEqual(['']);
    expect(skipped).toContain(`notFolder ${parts.join('/')}`);
  });
});
