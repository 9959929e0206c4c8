// public-inbox archives as an import source: v1 and v2 built by git itself, every message back
// byte for byte with the commit's date, removed messages left out, an interrupted import resumed
// without reading again what is in, and a directory that is no archive refused with a clear code.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { isMailstoreError } from '../../src/errors.js';
import { detectFormat } from '../../src/formats/detect.js';
import { publicInboxLayout, readPublicInbox } from '../../src/formats/public-inbox.js';
import { nodeFileSystem as fs } from '../../src/fs/node-fs.js';
import { importMail } from '../../src/import/importer.js';
import type { Store } from '../../src/store/store.js';
import { archiveMessages, writeV1, writeV2, type ArchiveMessage } from '../helpers/public-inbox.js';
import { tmpDir } from '../helpers/tmp.js';
import { withStore } from './helpers.js';

async function storedMessages(store: Store, mailbox: string): Promise<{ bytes: Buffer; date: number; zone?: number }[]> {
  const out: { bytes: Buffer; date: number; zone?: number }[] = [];
  for await (const m of store.messages(mailbox)) {
    out.push({ bytes: await store.fetch(mailbox, m.uid), date: new Date(m.internalDate).getTime(), zone: (m as { dateZoneMinutes?: number }).dateZoneMinutes });
  }
  return out;
}

const zoneMinutes = (zone = '+0000') => (zone[0] === '-' ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(3)));

function expectSame(stored: { bytes: Buffer; date: number; zone?: number }[], expected: ArchiveMessage[]): void {
  expect(stored.length).toBe(expected.length);
  stored.forEach((m, i) => {
    expect(m.bytes.equals(expected[i]!.bytes)).toBe(true);
    expect(m.date).toBe(expected[i]!.seconds * 1000);
    expect(m.zone).toBe(zoneMinutes(expected[i]!.zone));
  });
}

describe('public-inbox v1', () => {
  it('imports every message byte for byte, in commit order, with the author date; a removed one is left out', async () => {
    const messages = archiveMessages(12);
    const dir = writeV1(join(tmpDir('pi-v1'), 'list.git'), [...messages.map((add) => ({ add })), { remove: messages[4]! }]);
    expect(await detectFormat(fs, dir)).toBe('public-inbox');
    await withStore(async (store) => {
      const summary = await importMail(store, dir, { mailbox: 'lists/v1' });
      expect(summary.format).toBe('public-inbox');
      expect(summary.imported).toBe(11);
      expect(summary.skipped).toBe(0);
      expectSame(await storedMessages(store, 'lists/v1'), messages.filter((_, i) => i !== 4));
    });
  });

  it('an empty repository holds no message', async () => {
    const dir = join(tmpDir('pi-empty'), 'empty.git');
    execFileSync('git', ['init', '--quiet', '--bare', dir]);
    const read: unknown[] = [];
    for await (const m of readPublicInbox((await publicInboxLayout(fs, dir))!)) read.push(m);
    expect(read).toEqual([]);
  });
});

describe('public-inbox v2', () => {
  it('reads the epochs in number order; a d commit removes a message of an earlier epoch', async () => {
    const messages = archiveMessages(25);
    const epochs = [messages.slice(0, 10), messages.slice(10, 18), messages.slice(18)];
    const dir = writeV2(tmpDir('pi-v2'), [
      epochs[0]!.map((add) => ({ add })),
      [...epochs[1]!.map((add) => ({ add })), { remove: messages[3]! }],
      epochs[2]!.map((add) => ({ add })),
    ]);
    const layout = await publicInboxLayout(fs, dir);
    expect(layout?.version).toBe(2);
    expect(layout?.repositories.map((r) => r.slice(dir.length))).toEqual(['/git/0.git', '/git/1.git', '/git/2.git']);
    // the progress meter's fraction: commits read ÷ all 26 commits (25 adds, 1 removal)
    const fractions: number[] = [];
    for await (const m of readPublicInbox(layout!)) fractions.push(m.fraction!);
    expect(fractions[0]).toBeCloseTo(1 / 26, 9);
    expect(fractions.at(-1)).toBe(1);
    expect(fractions.every((f, i) => i === 0 || f > fractions[i - 1]!)).toBe(true);
    await withStore(async (store) => {
      const summary = await importMail(store, dir, { mailbox: 'lists/v2', format: 'public-inbox' });
      expect(summary.imported).toBe(24);
      expectSame(await storedMessages(store, 'lists/v2'), messages.filter((_, i) => i !== 3));
    });
  });

  it('a reader stopped early (a --messages limit, an error downstream) ends its git processes without an unhandled error', async () => {
    // a big second message: git is still sending it (and the answers queued behind it) when the reader stops
    const [first, ...rest] = archiveMessages(40);
    const big = { bytes: Buffer.alloc(24 * 1024 * 1024, 0x61), seconds: 1_700_000_000 };
    const dir = writeV2(tmpDir('pi-early'), [[first!, big, ...rest].map((add) => ({ add }))]);
    const layout = (await publicInboxLayout(fs, dir))!;
    for (const stopAfter of [1, 1, 3, 17]) {
      let n = 0;
      for await (const m of readPublicInbox(layout)) {
        expect(m.bytes.length).toBeGreaterThan(0);
        if (++n >= stopAfter) break;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 300)); // vitest fails the file on an unhandled rejection meanwhile
  });

  it('epochs go in number order (10.git after 2.git)', async () => {
    const root = tmpDir('pi-order');
    for (const n of [10, 2]) execFileSync('git', ['init', '--quiet', '--bare', join(root, 'git', `${n}.git`)]);
    expect((await publicInboxLayout(fs, root))?.repositories.map((r) => r.slice(root.length))).toEqual(['/git/2.git', '/git/10.git']);
  });

  it('positions count removed messages, so a removal between two runs does not move the rest', async () => {
    const messages = archiveMessages(6);
    // two removals in a row: the second commit changes d (M d), it adds none
    const dir = writeV2(tmpDir('pi-pos'), [[...messages.map((add) => ({ add })), { remove: messages[1]! }, { remove: messages[3]! }]]);
    const read: number[] = [];
    for await (const m of readPublicInbox((await publicInboxLayout(fs, dir))!)) read.push(m.position);
    expect(read).toEqual([0, 2, 4, 5]);
    // one epoch given alone (as mirrors publish them) reads the same
    const epoch = await publicInboxLayout(fs, join(dir, 'git', '0.git'));
    expect(epoch?.version).toBe(1);
    const alone: number[] = [];
    for await (const m of readPublicInbox(epoch!)) alone.push(m.position);
    expect(alone).toEqual(read);
  });

  it('positions the caller will not look at are passed over unread (no blob read), the others come whole', async () => {
    const messages = archiveMessages(8);
    const dir = writeV2(tmpDir('pi-skip'), [messages.map((add) => ({ add }))]);
    const read: { position: number; unread?: boolean; bytes: Buffer }[] = [];
    for await (const m of readPublicInbox((await publicInboxLayout(fs, dir))!, { skipBytes: (p) => p < 5 && p !== 3 })) read.push(m);
    expect(read.map((m) => m.position)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    for (const m of read) {
      const skipped = m.position < 5 && m.position !== 3;
      expect(m.unread === true).toBe(skipped);
      expect(m.bytes.equals(skipped ? Buffer.alloc(0) : messages[m.position]!.bytes)).toBe(true);
    }
  });

  it('a message over the size limit is skipped (tooLarge) and the rest go in', async () => {
    const messages = archiveMessages(5);
    const big = { bytes: Buffer.alloc(5000, 0x61), seconds: 1_700_000_000 };
    const dir = writeV2(tmpDir('pi-big'), [[...messages.slice(0, 2), big, ...messages.slice(2)].map((add) => ({ add }))]);
    await withStore(async (store) => {
      const skipped: string[] = [];
      const summary = await importMail(store, dir, { mailbox: 'big', messageBytesMax: 4096, onSkip: (_path, error, reason) => skipped.push(`${reason}:${error.code}`) });
      expect(skipped).toEqual(['tooLarge:TOO_LARGE']);
      expect(summary.imported).toBe(5);
      expectSame(await storedMessages(store, 'big'), messages);
    });
  });
});

describe('a blob missing from the repository', () => {
  it('its message is skipped (unreadable, NOT_FOUND) and the rest go in; the next run retries it and adds nothing twice', async () => {
    const messages = archiveMessages(5);
    const dir = writeV2(tmpDir('pi-missing'), [messages.slice(0, 3).map((add) => ({ add }))]);
    const repo = join(dir, 'git', '0.git');
    const git = (args: string[], input?: string | Buffer) => execFileSync('git', args, { env: { ...process.env, GIT_DIR: repo }, input }).toString().trim();
    // a commit whose m names a blob the repository does not have (a partial copy), then one more message
    const tree = git(['mktree', '--missing'], `100644 blob ${'ab'.repeat(20)}\tm\n`);
    let head = git(['commit-tree', tree, '-p', 'HEAD', '-m', 'gone']);
    const blob = git(['hash-object', '-w', '--stdin'], messages[3]!.bytes);
    head = git(['commit-tree', git(['mktree'], `100644 blob ${blob}\tm\n`), '-p', head, '-m', 'after']);
    git(['update-ref', 'refs/heads/master', head]);
    await withStore(async (store) => {
      const skipped: string[] = [];
      const first = await importMail(store, dir, { mailbox: 'm', onSkip: (_path, error, reason) => skipped.push(`${reason}:${error.code}`) });
      expect(skipped).toEqual(['unreadable:NOT_FOUND']);
      expect(first.imported).toBe(4);
      const second = await importMail(store, dir, { mailbox: 'm' });
      expect(second).toMatchObject({ imported: 0, skipped: 1, alreadyImported: 4 });
      const bodies = (await storedMessages(store, 'm')).map((m) => m.bytes);
      expect(bodies).toEqual([...messages.slice(0, 3), messages[3]!].map((m) => m.bytes));
    });
  });
});

describe('a blob whose bytes are not those of its id (bit rot, a bad copy)', () => {
  it('is skipped (unreadable, CORRUPT), never stored as the message; the rest go in and the next run retries it', async () => {
    const messages = archiveMessages(4);
    const dir = writeV2(tmpDir('pi-rot'), [messages.map((add) => ({ add }))]);
    const repo = join(dir, 'git', '0.git');
    const git = (args: string[]) => execFileSync('git', args, { env: { ...process.env, GIT_DIR: repo } }).toString().trim();
    const blob = git(['rev-parse', 'HEAD~1:m']); // the third message
    const object = join(repo, 'objects', blob.slice(0, 2), blob.slice(2));
    // a well-formed loose object holding other bytes: git cat-file hands them over without a word
    const rotten = Buffer.from(messages[2]!.bytes.toString('latin1').replace(/.$/s, '!'), 'latin1');
    chmodSync(object, 0o644);
    writeFileSync(object, deflateSync(Buffer.concat([Buffer.from(`blob ${rotten.length}\0`), rotten])));
    expect(execFileSync('git', ['cat-file', 'blob', blob], { env: { ...process.env, GIT_DIR: repo } }).equals(rotten)).toBe(true);
    await withStore(async (store) => {
      const skipped: string[] = [];
      const first = await importMail(store, dir, { mailbox: 'rot', onSkip: (_path, error, reason) => skipped.push(`${reason}:${error.code}`) });
      expect(skipped).toEqual(['unreadable:CORRUPT']);
      expect(first.imported).toBe(3);
      expect((await storedMessages(store, 'rot')).map((m) => m.bytes)).toEqual([0, 1, 3].map((i) => messages[i]!.bytes));
      const second = await importMail(store, dir, { mailbox: 'rot' });
      expect(second).toMatchObject({ imported: 0, skipped: 1, alreadyImported: 3 });
    });
  });
});

describe('a packed blob git cannot inflate (git cat-file dies on it)', () => {
  it('is skipped (unreadable, CORRUPT) and every other message goes in, before and after it; the next run retries it', async () => {
    const messages = archiveMessages(8);
    const dir = writeV2(tmpDir('pi-pack'), [messages.map((add) => ({ add }))]);
    const repo = join(dir, 'git', '0.git');
    const git = (args: string[]) => execFileSync('git', args, { env: { ...process.env, GIT_DIR: repo } }).toString();
    git(['repack', '-a', '-d', '-q']);
    const blob = git(['rev-parse', 'HEAD~4:m']).trim(); // the fourth message
    const pack = join(repo, 'objects', 'pack');
    const idx = readdirSync(pack).find((name) => name.endsWith('.idx'))!;
    const [, packed, offset] = /^\S+\s+blob\s+\d+\s+(\d+)\s+(\d+)/.exec(git(['verify-pack', '-v', join(pack, idx)]).split('\n').find((line) => line.startsWith(blob))!)!.map(Number);
    const packFile = join(pack, idx.replace(/\.idx$/, '.pack'));
    chmodSync(packFile, 0o644);
    const bytes = readFileSync(packFile);
    bytes.fill(0, offset! + 4, offset! + packed! - 1); // the deflated stream: git dies "packed object ... is corrupt"
    writeFileSync(packFile, bytes);
    expect(() => git(['cat-file', 'blob', blob])).toThrow();
    await withStore(async (store) => {
      const skipped: string[] = [];
      const first = await importMail(store, dir, { mailbox: 'pk', onSkip: (_path, error, reason) => skipped.push(`${reason}:${error.code}`) });
      expect(skipped).toEqual(['unreadable:CORRUPT']);
      expect(first.imported).toBe(7);
      expect((await storedMessages(store, 'pk')).map((m) => m.bytes)).toEqual(messages.filter((_, i) => i !== 3).map((m) => m.bytes));
      expect(await importMail(store, dir, { mailbox: 'pk' })).toMatchObject({ imported: 0, skipped: 1, alreadyImported: 7 });
    });
  });
});

describe('resume', () => {
  it('an interrupted import resumes where it stopped: each message once, and none before the resume point read again', async () => {
    const messages = archiveMessages(40);
    const dir = writeV2(tmpDir('pi-resume'), [messages.slice(0, 25).map((add) => ({ add })), messages.slice(25).map((add) => ({ add }))]);
    await withStore(async (store) => {
      let batches = 0;
      const first = await importMail(store, dir, { mailbox: 'r', batchMessagesMax: 7, onBatch: () => { batches++; }, shouldStop: () => batches >= 2 });
      expect(first.interrupted).toBe(true);
      expect(first.imported).toBeGreaterThan(0);
      expect(first.imported).toBeLessThan(40);
      const read: number[] = [];
      const second = await importMail(store, dir, { mailbox: 'r', batchMessagesMax: 7, onRead: (m) => read.push(m.position) });
      expect(second.interrupted).toBe(false);
      expect(second.alreadyImported).toBe(first.imported);
      expect(first.imported + second.imported).toBe(40);
      expect(read[0]).toBe(first.imported); // the second run starts reading where the first stopped
      expectSame(await storedMessages(store, 'r'), messages);
    });
  });

  it('a rewritten history under a resume point is refused (REFUSED), nothing added', async () => {
    const messages = archiveMessages(10);
    const root = tmpDir('pi-rewrite');
    const dir = writeV1(join(root, 'a.git'), messages.map((add) => ({ add })));
    await withStore(async (store) => {
      let batches = 0;
      await importMail(store, dir, { mailbox: 'w', batchMessagesMax: 3, onBatch: () => { batches++; }, shouldStop: () => batches >= 1 });
      const before = (await store.status('w')).messages;
      // the same path now holds a different history
      execFileSync('rm', ['-rf', dir]);
      writeV1(dir, archiveMessages(10, 100).map((add) => ({ add })));
      const error = await importMail(store, dir, { mailbox: 'w' }).catch((e: unknown) => e);
      expect(isMailstoreError(error, 'REFUSED')).toBe(true);
      expect((await store.status('w')).messages).toBe(before);
    });
  });
});

describe('not an archive', () => {
  it('a directory that is no git directory is INVALID with --format public-inbox; a missing one NOT_FOUND', async () => {
    const plain = tmpDir('pi-plain');
    writeFileSync(join(plain, 'note.txt'), 'hello\n');
    expect(await detectFormat(fs, plain)).toBe('eml');
    await withStore(async (store) => {
      const invalid = await importMail(store, plain, { mailbox: 'x', format: 'public-inbox' }).catch((e: unknown) => e);
      expect(isMailstoreError(invalid, 'INVALID')).toBe(true);
      expect((invalid as Error).message).toMatch(/not a public-inbox archive/);
      const missing = await importMail(store, join(plain, 'nope'), { mailbox: 'x', format: 'public-inbox' }).catch((e: unknown) => e);
      expect(isMailstoreError(missing, 'NOT_FOUND')).toBe(true);
    });
  });

  it('a v2 epoch that is no git directory, or a repository with damaged objects, is INVALID', async () => {
    const root = tmpDir('pi-damaged');
    mkdirSync(join(root, 'git', '0.git'), { recursive: true });
    await withStore(async (store) => {
      const error = await importMail(store, root, { mailbox: 'x', format: 'public-inbox' }).catch((e: unknown) => e);
      expect(isMailstoreError(error, 'INVALID')).toBe(true);
    });
    const fake = join(tmpDir('pi-fake'), 'f.git');
    mkdirSync(join(fake, 'objects'), { recursive: true });
    writeFileSync(join(fake, 'HEAD'), 'garbage\n');
    await withStore(async (store) => {
      const error = await importMail(store, fake, { mailbox: 'x', format: 'public-inbox' }).catch((e: unknown) => e);
      expect(isMailstoreError(error, 'INVALID')).toBe(true);
      expect(await store.status('x').then((s) => s.messages, () => 0)).toBe(0);
    });
  });
});
