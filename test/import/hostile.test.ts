// Hostile and careless input to import (issue 10 #3, #7, #9, #15): a file unreadable at the first
// run goes in at the next, exactly once; links and special files inside a source are never
// followed or read; the message limit holds while reading; bad folder names are found first.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, rmdirSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isMailstoreError, type MailstoreError } from '../../src/errors.js';
import type { FileHandle, FileSystem, OpenMode } from '../../src/fs/filesystem.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { readMessageFile } from '../../src/formats/eml.js';
import { importMail, type ImportOptions } from '../../src/import/importer.js';
import { limits } from '../../src/limits.js';
import { FaultFileSystem, type FaultKind } from '../sim/faultfs.js';
import { tmpDir } from '../helpers/tmp.js';
import { maildir, stored, withStore } from './helpers.js';

const body = (i: number | string) => `Message-ID: <h${i}@example.org>\nSubject: ${i}\n\nbody ${i}\n`;
const SECRET = 'root:x:0:0:SECRET-BYTES\n';
const COMPRESSED_MAGIC: Record<string, Buffer> = {
  gz: Buffer.from([0x1f, 0x8b, 8, 0]), xz: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0]),
  zst: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), bz2: Buffer.from('BZh91AY&SY', 'latin1'),
};



/** Every open or read of a path containing `name` fails with `code` until fs.clear() (mode 000 as a user sees it). */
function denyReads(fs: FaultFileSystem, name: string, code: FaultKind): void {
  fs.injectAt((op) => (op.kind === 'open' || op.kind === 'read') && op.path.includes(name), code, { times: Infinity });
}

describe('a skipped entry is retried by the next run (#3)', () => {
  it('Maildir: a file unreadable at the first run goes in at the second, and nothing is added twice', async () => {
    const names = ['1700000001.a:2,S', '1700000002.b:2,S', '1700000003.c:2,S', '1700000004.d:2,S'];
    const source = maildir(join(tmpDir('src'), 'md'), Object.fromEntries(names.map((name, i) => [name, body(i)])));
    await withStore(async (store) => {
      const fs = new FaultFileSystem();
      // EACCES on the second file, as mode 000 gives a user (root reads through mode 000)
      denyReads(fs, names[1], 'EACCES');
      const options: ImportOptions = { mailbox: 'INBOX', fs, batchMessagesMax: 2 };
      const first = await importMail(store, source, options);
      expect(first).toMatchObject({ imported: 3, skipped: 1, skippedReasons: { unreadable: 1 } });
      expect(first.skippedItems[0]).toMatchObject({ path: join(source, 'cur', names[1]!), code: 'ACCESS', reason: 'unreadable' });

      const stillDenied = await importMail(store, source, options);
      expect(stillDenied).toMatchObject({ imported: 0, alreadyImported: 3, skipped: 1 });

      fs.clear();
      const second = await importMail(store, source, options);
      expect(second).toMatchObject({ imported: 1, alreadyImported: 3, skipped: 0 });
      expect((await stored(store, 'INBOX')).sort()).toEqual([0, 1, 2, 3].map(body));
      expect(await importMail(store, source, options)).toMatchObject({ imported: 0, alreadyImported: 4 });
      expect(await stored(store, 'INBOX')).toHaveLength(4);
    });
  });

  // out of descriptors is the importer's own state, not the entry's: it skipped ('unreadable')
  // every file and folder it could not open then and went on (ulimit -n 31: 48 of 300 files; at
  // 30 the whole cur/, imported 0, exit 1), where it now stops IO and the next run takes the rest
  for (const [what, fault] of [['a file', 'read'], ['a folder', 'readdir']] as const) {
    it(`out of descriptors (EMFILE, ENFILE) opening ${what}: the import stops IO, nothing skipped, and the next run imports the rest, each once`, async () => {
      for (const code of ['EMFILE', 'ENFILE'] as const) {
        const names = ['1700000001.a:2,S', '1700000002.b:2,S', '1700000003.c:2,S', '1700000004.d:2,S'];
        const source = maildir(join(tmpDir('src'), 'md'), Object.fromEntries(names.map((name, i) => [name, body(i)])));
        await withStore(async (store) => {
          const fs = new FaultFileSystem();
          // a file's open for reading is a 'read' here; cur/ and new/ are listed through their held descriptors
          fs.injectAt((op) => op.kind === fault && op.path.includes(fault === 'read' ? names[2]! : '/proc/self/fd/'), code, { times: Infinity });
          const options: ImportOptions = { mailbox: 'INBOX', fs, batchMessagesMax: 2 };
          await expect(importMail(store, source, options)).rejects.toMatchObject({ code: 'IO', message: expect.stringContaining(code) });
          fs.clear();
          const second = await importMail(store, source, options);
          expect(second).toMatchObject({ skipped: 0 });
          expect(second.imported + second.alreadyImported).toBe(4);
          expect((await stored(store, 'INBOX')).sort()).toEqual([0, 1, 2, 3].map(body));
        });
      }
    });
  }

  it('a file imported before and unreadable now is not imported again once readable', async () => {
    const source = maildir(join(tmpDir('src'), 'md'), { '1.a': body('a'), '2.b': body('b') });
    await withStore(async (store) => {
      const fs = new FaultFileSystem();
      await importMail(store, source, { mailbox: 'INBOX', fs });
      denyReads(fs, '1.a', 'EIO');
      expect(await importMail(store, source, { mailbox: 'INBOX', fs })).toMatchObject({ imported: 0, alreadyImported: 1, skipped: 1 });
      fs.clear();
      expect(await importMail(store, source, { mailbox: 'INBOX', fs })).toMatchObject({ imported: 0, alreadyImported: 2 });
      expect(await stored(store, 'INBOX')).toEqual([body('a'), body('b')]);
    });
  });

  it('mbox: a message over the limit at the first run goes in once the limit allows it', async () => {
    const mbox = join(tmpDir('src'), 'in.mbox');
    const bodies = [body(0), body(1) + 'x'.repeat(400), body(2)];
    writeFileSync(mbox, bodies.map((b) => `From MAILER-DAEMON Mon Jan  1 00:00:00 2024\n${b}\n`).join(''));
    await withStore(async (store) => {
      expect(await importMail(store, mbox, { mailbox: 'INBOX', messageBytesMax: 200 })).toMatchObject({ imported: 2, skippedReasons: { tooLarge: 1 } });
      expect(await importMail(store, mbox, { mailbox: 'INBOX' })).toMatchObject({ imported: 1, alreadyImported: 2, skipped: 0 });
      expect((await stored(store, 'INBOX')).sort()).toEqual([...bodies].sort());
    });
  });

  it('a retried position that now holds another entry is refused, not imported', async () => {
    const source = maildir(join(tmpDir('src'), 'md'), { '1.a': body('a'), '2.b': body('b'), '3.c': body('c') });
    await withStore(async (store) => {
      const fs = new FaultFileSystem();
      denyReads(fs, '2.b', 'EACCES');
      expect(await importMail(store, source, { mailbox: 'INBOX', fs })).toMatchObject({ imported: 2, skipped: 1 });
      fs.clear();
      execFileSync('mv', [join(source, 'cur', '2.b'), join(source, 'cur', '2.z')]);
      const error = await importMail(store, source, { mailbox: 'INBOX', fs }).catch((e: MailstoreError) => e);
      expect(isMailstoreError(error, 'REFUSED'), String(error)).toBe(true);
      expect(await stored(store, 'INBOX')).toEqual([body('a'), body('c')]);
    });
  });
});

describe('links and special files inside a source are never followed (#7)', () => {
  function hostileTree(): { source: string; secretDir: string } {
    const work = tmpDir('hostile');
    const secretDir = join(work, 'root-only');
    mkdirSync(join(secretDir, 'cur'), { recursive: true });
    writeFileSync(join(secretDir, 'passwd'), SECRET);
    writeFileSync(join(secretDir, 'cur', '1.secret:2,'), SECRET);
    const source = maildir(join(work, 'md'), { '1700000001.ok:2,S': body('ok') });
    symlinkSync(join(secretDir, 'passwd'), join(source, 'cur', '1700000002.x:2,'));
    symlinkSync(secretDir, join(source, '.Evil')); // a folder link to a root-only Maildir
    maildir(join(source, '.Real'), { '1.real:2,': body('real') });
    rmdirSync(join(source, '.Real', 'new'));
    symlinkSync(join(secretDir, 'cur'), join(source, '.Real', 'new')); // a cur/new link inside a real folder
    execFileSync('mkfifo', [join(source, 'cur', '1700000003.fifo:2,')]);
    symlinkSync(join(secretDir, 'passwd'), join(source, 'dovecot-keywords'));
    return { source, secretDir };
  }

  it('Maildir++: file, folder, cur/new and keywords links and a FIFO are skipped and reported; no secret byte is stored', async () => {
    const { source } = hostileTree();
    await withStore(async (store) => {
      const summary = await importMail(store, source, { mailbox: 'INBOX' });
      expect(summary.imported).toBe(2);
      expect(summary.skippedReasons).toEqual({ symlink: 4, special: 1 });
      expect(summary.skippedItems.map((item) => item.path.slice(source.length + 1)).sort()).toEqual(
        ['.Evil', '.Real/new', 'cur/1700000002.x:2,', 'cur/1700000003.fifo:2,', 'dovecot-keywords']);
      expect(await stored(store, 'INBOX')).toEqual([body('ok')]);
      expect(await stored(store, 'INBOX/Real')).toEqual([body('real')]);
      expect((await store.listMailboxes()).map((m) => m.name).sort()).toEqual(['INBOX', 'INBOX/Real']);
    });
  });

  it('eml directory: a file link, a directory link and a FIFO are skipped; the source itself may be a link', async () => {
    const work = tmpDir('hostile');
    const source = join(work, 'eml');
    mkdirSync(join(source, 'sub'), { recursive: true });
    writeFileSync(join(work, 'passwd'), SECRET);
    mkdirSync(join(work, 'secret-dir'));
    writeFileSync(join(work, 'secret-dir', 'm.eml'), SECRET);
    writeFileSync(join(source, 'a.eml'), body('a'));
    writeFileSync(join(source, 'sub', 'b.eml'), body('b'));
    symlinkSync(join(work, 'passwd'), join(source, 'c.eml'));
    symlinkSync(join(work, 'secret-dir'), join(source, 'd'));
    execFileSync('mkfifo', [join(source, 'e.eml')]);
    symlinkSync(source, join(work, 'link-to-source'));
    await withStore(async (store) => {
      const summary = await importMail(store, join(work, 'link-to-source'), { mailbox: 'INBOX' });
      expect(summary).toMatchObject({ format: 'eml', imported: 2, skipped: 3, skippedReasons: { symlink: 2, special: 1 } });
      // Each subdirectory holding files is a folder of its own (item 10 of issue 18; before, b went into INBOX too).
      expect(await stored(store, 'INBOX')).toEqual([body('a')]);
      expect(await stored(store, 'INBOX/sub')).toEqual([body('b')]);
    });
  });

  it('readMessageFile refuses a link and a FIFO at the open itself (a swap after the listing changes nothing)', async () => {
    const work = tmpDir('hostile');
    writeFileSync(join(work, 'passwd'), SECRET);
    symlinkSync(join(work, 'passwd'), join(work, 'link'));
    execFileSync('mkfifo', [join(work, 'fifo')]);
    const reasons: string[] = [];
    const onSkip = (_path: string, _error: MailstoreError, reason: string) => { reasons.push(reason); };
    expect(await readMessageFile(nodeFileSystem, join(work, 'link'), { onSkip })).toBeUndefined();
    expect(await readMessageFile(nodeFileSystem, join(work, 'fifo'), { onSkip })).toBeUndefined();
    expect(reasons).toEqual(['symlink', 'special']);
    // the file the admin names is followed
    expect((await readMessageFile(nodeFileSystem, join(work, 'link'), { onSkip, followLink: true }))?.bytes.toString()).toBe(SECRET);
  });

  it('a cur/ swapped for a link after it was listed is not followed: the reads stay in the directory that was checked', async () => {
    const work = tmpDir('hostile');
    const secretDir = join(work, 'root-only');
    mkdirSync(secretDir);
    writeFileSync(join(secretDir, '1.bait'), SECRET);
    const source = maildir(join(work, 'md'), { '1.bait': body('bait') });
    let swapped = false;
    // the attacker's move, at the worst moment: cur/ was checked and listed, its file not yet opened
    const racing: FileSystem = Object.create(nodeFileSystem, {
      open: {
        value: async (path: string, mode: OpenMode) => {
          if (!swapped && path.endsWith('/1.bait')) {
            swapped = true;
            execFileSync('mv', [join(source, 'cur'), join(source, 'cur.moved')]);
            symlinkSync(secretDir, join(source, 'cur'));
          }
          return nodeFileSystem.open(path, mode);
        },
      },
    });
    await withStore(async (store) => {
      const summary = await importMail(store, source, { mailbox: 'INBOX', fs: racing });
      expect(swapped).toBe(true);
      expect(summary.imported).toBe(1);
      expect(await stored(store, 'INBOX')).toEqual([body('bait')]);
    });
  });

  it('an eml subdirectory swapped for a link after its lstat is reported, not followed', async () => {
    const work = tmpDir('hostile');
    const secretDir = join(work, 'root-only');
    mkdirSync(secretDir);
    writeFileSync(join(secretDir, 'm.eml'), SECRET);
    const source = join(work, 'eml');
    mkdirSync(join(source, 'sub'), { recursive: true });
    writeFileSync(join(source, 'sub', 'm.eml'), body('m'));
    let swapped = false;
    const racing: FileSystem = Object.create(nodeFileSystem, {
      lstat: {
        value: async (path: string) => {
          const stat = await nodeFileSystem.lstat(path);
          if (!swapped && path.endsWith('/sub')) {
            swapped = true;
            execFileSync('mv', [join(source, 'sub'), join(work, 'sub.moved')]);
            symlinkSync(secretDir, join(source, 'sub'));
          }
          return stat;
        },
      },
    });
    await withStore(async (store) => {
      const summary = await importMail(store, source, { mailbox: 'INBOX', fs: racing });
      expect(swapped).toBe(true);
      expect(summary).toMatchObject({ imported: 0, skippedReasons: { symlink: 1 } });
    });
  });

  it('a top-level mbox given as a link is read', async () => {
    const work = tmpDir('hostile');
    writeFileSync(join(work, 'real.mbox'), `From MAILER-DAEMON Mon Jan  1 00:00:00 2024\n${body(1)}\n`);
    symlinkSync(join(work, 'real.mbox'), join(work, 'link.mbox'));
    await withStore(async (store) => {
      expect(await importMail(store, join(work, 'link.mbox'), { mailbox: 'INBOX' })).toMatchObject({ format: 'mbox', imported: 1, skipped: 0 });
    });
  });

  it('a top-level FIFO or device given as an mbox is INVALID saying what it is (it was called a directory), never read', async () => {
    const work = tmpDir('hostile');
    execFileSync('mkfifo', [join(work, 'fifo')]);
    await withStore(async (store) => {
      for (const path of [join(work, 'fifo'), '/dev/zero']) {
        await expect(importMail(store, path, { mailbox: 'INBOX', format: 'mbox' })).rejects.toMatchObject({
          code: 'INVALID', message: `${path} is not a regular file (a FIFO, socket or device), not an mbox file`,
        });
      }
      expect(await store.listMailboxes()).toEqual([]); // nothing created
    });
  });

  it('a compressed mbox (gzip, xz, zstd, bzip2) is INVALID naming the compression, whatever --format says; nothing created', async () => {
    // gzip took it for one message: its compressed bytes went in as mail, exit 0
    const work = tmpDir('hostile');
    const mbox = join(work, 'archive.mbox');
    writeFileSync(mbox, `From MAILER-DAEMON Mon Jan  1 00:00:00 2024\n${body(1)}\n`);
    const tools: [string, string[], string][] = [['gzip', ['-k'], 'gz'], ['xz', ['-k'], 'xz'], ['zstd', ['-q'], 'zst'], ['bzip2', ['-k'], 'bz2']];
    await withStore(async (store) => {
      for (const [tool, args, ext] of tools) {
        const packed = `${mbox}.${ext}`;
        // the compressors CI has; one the machine lacks is written by its magic number
        try { execFileSync(tool, [...args, mbox], { stdio: 'ignore' }); } catch { writeFileSync(packed, Buffer.concat([COMPRESSED_MAGIC[ext]!, Buffer.alloc(64, 7)])); }
        for (const format of [undefined, 'mbox', 'eml'] as const) {
          await expect(importMail(store, packed, { mailbox: 'INBOX', format }), `${ext} ${format}`).rejects.toMatchObject({
            code: 'INVALID', message: expect.stringContaining(`${packed} is ${tool}-compressed`),
          });
        }
      }
      expect(await store.listMailboxes()).toEqual([]);
    });
  });

  it('a Babyl (Emacs RMAIL) or MMDF mailbox is INVALID naming the format, not one message of all of them', async () => {
    // both went in as a single message holding every message of the file, exit 0
    const work = tmpDir('hostile');
    const script = `import mailbox, sys
for cls, path in ((mailbox.Babyl, sys.argv[1]), (mailbox.MMDF, sys.argv[2])):
    box = cls(path); box.add(b'Subject: a\\n\\nbody a\\n'); box.add(b'Subject: b\\n\\nbody b\\n'); box.flush(); box.close()`;
    const [babyl, mmdf] = [join(work, 'RMAIL'), join(work, 'box.mmdf')];
    execFileSync('python3', ['-c', script, babyl, mmdf]);
    await withStore(async (store) => {
      for (const [path, what] of [[babyl, 'a Babyl mailbox'], [mmdf, 'an MMDF mailbox']] as const) {
        for (const format of [undefined, 'mbox', 'eml'] as const) {
          await expect(importMail(store, path, { mailbox: 'INBOX', format }), `${what} ${format}`).rejects.toMatchObject({
            code: 'INVALID', message: expect.stringContaining(`${path} is ${what}`),
          });
        }
      }
      expect(await store.listMailboxes()).toEqual([]);
    });
  });
});

describe('the message limit holds while reading (#9)', () => {
  it('Maildir: a sparse file one byte over the limit is skipped as tooLarge without being read', async () => {
    const source = maildir(join(tmpDir('src'), 'md'), { '1.a': body('a') });
    writeFileSync(join(source, 'cur', '2.huge'), '');
    truncateSync(join(source, 'cur', '2.huge'), limits.messageBytesMax + 1);
    await withStore(async (store) => {
      const summary = await importMail(store, source, { mailbox: 'INBOX' });
      expect(summary).toMatchObject({ imported: 1, skippedReasons: { tooLarge: 1 } });
      expect(summary.skippedItems[0]!.code).toBe('TOO_LARGE');
    });
  });

  it('a file that grows past the limit while it is read is refused by the read, not by its size', async () => {
    // stat says 10 bytes; reads never end (a file being appended to, a device)
    const endless: FileSystem = Object.create(nodeFileSystem, {
      open: {
        value: async (path: string): Promise<FileHandle> => ({
          path,
          read: async (buffer: Buffer, offset: number, length: number) => buffer.fill(0x61, offset, offset + length) && length,
          stat: async () => ({ size: 10, dev: 1, ino: 1, mode: 0o100644, mtimeMs: 0, isDirectory: false, isFile: true }),
          close: async () => {},
        } as unknown as FileHandle),
      },
    });
    const skipped: MailstoreError[] = [];
    const read = await readMessageFile(endless, '/virtual/grows', { messageBytesMax: 1000, onSkip: (_path, error) => { skipped.push(error); } });
    expect(read).toBeUndefined();
    expect(skipped.map((e) => e.code)).toEqual(['TOO_LARGE']);
  });

  it('mbox: one huge message is skipped, the messages around it go in', async () => {
    const mbox = join(tmpDir('src'), 'in.mbox');
    writeFileSync(mbox, [body(0), body(1) + 'y'.repeat(5000), body(2)].map((b) => `From MAILER-DAEMON Mon Jan  1 00:00:00 2024\n${b}\n`).join(''));
    await withStore(async (store) => {
      expect(await importMail(store, mbox, { mailbox: 'INBOX', messageBytesMax: 1000 })).toMatchObject({ imported: 2, skippedReasons: { tooLarge: 1 } });
      expect(await stored(store, 'INBOX')).toEqual([body(0), body(2)]);
    });
  });

  it('eml: a single file over the limit is skipped and reported', async () => {
    const file = join(tmpDir('src'), 'big.eml');
    writeFileSync(file, body('big') + 'z'.repeat(2000));
    await withStore(async (store) => {
      expect(await importMail(store, file, { mailbox: 'INBOX', messageBytesMax: 1000 })).toMatchObject({ imported: 0, skipped: 1, skippedReasons: { tooLarge: 1 } });
    });
  });
});

describe('folder names are all checked before anything is imported (#15)', () => {
  it('.a%b and .Bad..Name are both skipped and reported; every valid folder goes in', async () => {
    const source = maildir(join(tmpDir('src'), 'md'), { '1.inbox': body('inbox') });
    maildir(join(source, '.Good'), { '1.good': body('good') });
    maildir(join(source, '.a%b'), { '1.wild': body('wild') });
    maildir(join(source, '.Bad..Name'), { '1.bad': body('bad') });
    maildir(join(source, '.Zed'), { '1.zed': body('zed') });
    await withStore(async (store) => {
      const summary = await importMail(store, source, { mailbox: 'INBOX' });
      expect(summary).toMatchObject({ imported: 3, skipped: 2, skippedReasons: { badName: 2 } });
      expect(summary.skippedItems.map((item) => item.path).sort()).toEqual([join(source, '.Bad..Name'), join(source, '.a%b')]);
      expect((await store.listMailboxes()).map((m) => m.name).sort()).toEqual(['INBOX', 'INBOX/Good', 'INBOX/Zed']);
    });
  });

  it('an invalid target mailbox is INVALID before anything is read or created', async () => {
    const source = maildir(join(tmpDir('src'), 'md'), { '1.a': body('a') });
    chmodSync(source, 0o755);
    await withStore(async (store) => {
      const error = await importMail(store, source, { mailbox: 'bad%name' }).catch((e: MailstoreError) => e);
      expect(isMailstoreError(error, 'INVALID'), String(error)).toBe(true);
      expect(await store.listMailboxes()).toEqual([]);
    });
  });
});

describe('two runs of one import at once (both through one daemon reach one store)', () => {
  it('each message goes in once: a run whose resume cursor moved under it stops (REFUSED), and a re-run resumes', async () => {
    const mbox = join(tmpDir('src'), 'in.mbox');
    const bodies = Array.from({ length: 300 }, (_, i) => body(i));
    writeFileSync(mbox, bodies.map((b) => `From MAILER-DAEMON Mon Jan  1 00:00:00 2024\n${b}\n`).join(''));
    await withStore(async (store) => {
      await store.createMailbox('INBOX');
      const options: ImportOptions = { mailbox: 'INBOX', batchMessagesMax: 10 };
      const runs = await Promise.allSettled([importMail(store, mbox, options), importMail(store, mbox, options)]);
      for (const run of runs) {
        if (run.status === 'rejected') expect(isMailstoreError(run.reason, 'REFUSED'), String(run.reason)).toBe(true);
      }
      const again = await importMail(store, mbox, options);
      expect(again.imported + again.alreadyImported).toBe(bodies.length);
      expect((await stored(store, 'INBOX')).sort()).toEqual([...bodies].sort());
    });
  });
});
