// A read-only open's private copy of the index (level-shadow.ts) goes in this user's own directory
// of $TMPDIR, and only that directory is looked through for copies killed processes left: a look
// at $TMPDIR itself listed every file of a mail host's shared /tmp at every read-only open.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { chmodSync, existsSync, mkdirSync, promises as fsp, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { shadowLevelDb } from '../../src/fs/level-shadow.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';

const saved = process.env.TMPDIR;
afterEach(() => {
  if (saved === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = saved;
  vi.restoreAllMocks();
});

/** A store with one message, closed, and an empty $TMPDIR of its own with `others` files in it. */
async function storeAndTmp(others: number): Promise<{ root: string; tmp: string }> {
  const root = join(tmpDir('shadow'), 's');
  const store = await Store.open(root, { create: true });
  await store.createMailbox('INBOX');
  await store.append('INBOX', Buffer.from('Subject: x\r\n\r\nx\r\n'));
  await store.close();
  const tmp = tmpDir('shadow-tmp');
  for (let i = 0; i < others; i++) writeFileSync(join(tmp, `someone-else-${i}`), '');
  process.env.TMPDIR = tmp;
  return { root, tmp };
}

describe('the shadow of a read-only open', () => {
  it('never lists $TMPDIR itself: only its own directory there, where a dead process\'s copy is removed', async () => {
    const { root, tmp } = await storeAndTmp(100);
    const own = join(tmp, `mailstore-read-only-uid${process.getuid!()}`);
    mkdirSync(own, { mode: 0o700 });
    const dead = join(own, 'mailstore-read-only-999999999-abc'); // a pid no process has
    mkdirSync(dead);
    const listed: string[] = [];
    const readdir = fsp.readdir.bind(fsp);
    vi.spyOn(fsp, 'readdir').mockImplementation(((path: string, ...rest: unknown[]) => { listed.push(String(path)); return (readdir as (...a: unknown[]) => unknown)(path, ...rest); }) as typeof fsp.readdir);
    const store = await Store.open(root, { readOnly: true });
    expect((await store.status('INBOX')).messages).toBe(1);
    await store.close();
    expect(listed).not.toContain(tmp);
    expect(listed).toContain(own);
    expect(existsSync(dead)).toBe(false);
    expect(readdirSync(own)).toEqual([]); // its own copy removed on close
    expect(readdirSync(tmp)).toHaveLength(101); // nobody else's file touched
  });

  it('a directory of that name others may enter (made by someone else in a shared /tmp) is not used: $TMPDIR itself, nothing removed', async () => {
    const { tmp } = await storeAndTmp(0);
    const own = join(tmp, `mailstore-read-only-uid${process.getuid!()}`);
    mkdirSync(own);
    chmodSync(own, 0o777);
    const planted = join(own, 'mailstore-read-only-999999999-abc');
    mkdirSync(planted);
    const index = join(tmpDir('shadow-index'), 'index');
    mkdirSync(index);
    const shadow = await shadowLevelDb(index);
    try {
      expect(shadow.path.startsWith(join(tmp, 'mailstore-read-only-'))).toBe(true);
      expect(shadow.path.startsWith(own)).toBe(false);
      expect(existsSync(planted)).toBe(true);
    } finally {
      await shadow.remove();
    }
  });
});
