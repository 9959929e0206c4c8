import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodeFileSystem as fs } from '../../src/fs/node-fs.js';
import { listEmlFolders, readEmlDir } from '../../src/formats/eml.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'mailstore-eml-'));

describe('readEmlDir', () => {
  it('yields every regular non-hidden file, recursively and sorted, whatever the extension', async () => {
    const dir = tmp();
    mkdirSync(join(dir, 'b', 'deeper'), { recursive: true });
    mkdirSync(join(dir, '.hidden-dir'));
    writeFileSync(join(dir, 'c.eml'), 'c');
    writeFileSync(join(dir, 'a.txt'), 'a');
    writeFileSync(join(dir, 'b', 'noext'), 'b1');
    writeFileSync(join(dir, 'b', 'deeper', 'x.eml'), 'b2');
    writeFileSync(join(dir, '.DS_Store'), 'no');
    writeFileSync(join(dir, '.hidden-dir', 'm.eml'), 'no');
    symlinkSync(dir, join(dir, 'b', 'loop'));
    const found = [];
    const skipped: string[] = [];
    const onSkip = (path: string, error: { code: string }, reason: string) => skipped.push(`${path.slice(dir.length + 1)} ${error.code} ${reason}`);
    for await (const message of readEmlDir(fs, dir, { onSkip })) found.push([message.path.slice(dir.length + 1), message.bytes.toString()]);
    expect(found).toEqual([['a.txt', 'a'], ['b/deeper/x.eml', 'b2'], ['b/noext', 'b1'], ['c.eml', 'c']]);
    expect(skipped).toEqual(['b/loop INVALID symlink']); // a link is never followed, so it cannot loop either
  });

  it('reads numbered files in number order, as Python\'s mailbox.MH reads an MH folder (nmh, Claws Mail)', async () => {
    // byte order put 10 before 2: a folder of 12 messages came in as uids 1, 10, 11, 12, 2, ...
    const dir = tmp();
    for (let n = 1; n <= 12; n += 1) writeFileSync(join(dir, String(n)), `Subject: ${n}\n\n${n}\n`);
    for (const name of ['mail-2.eml', 'mail-10.eml', 'mail-1.eml']) writeFileSync(join(dir, name), name);
    writeFileSync(join(dir, '.mh_sequences'), 'unseen: 12\n');
    const script = 'import mailbox, sys; print(" ".join(str(k) for k in mailbox.MH(sys.argv[1], create=False).keys()))';
    const python = spawnSync('python3', ['-c', script, dir], { encoding: 'utf8' });
    expect(python.status, python.stderr).toBe(0);
    const found = [];
    for await (const message of readEmlDir(fs, dir)) found.push(message.path.slice(dir.length + 1));
    expect(found.filter((name) => /^\d+$/.test(name)).join(' ')).toBe(python.stdout.trim());
    expect(found).toEqual([...Array.from({ length: 12 }, (_, i) => String(i + 1)), 'mail-1.eml', 'mail-2.eml', 'mail-10.eml']);
  });

  it('reports a (dangling) symlink and an oversized file through onSkip and goes on', async () => {
    const dir = tmp();
    writeFileSync(join(dir, '1.eml'), 'one');
    symlinkSync(join(dir, 'gone'), join(dir, '2.eml'));
    writeFileSync(join(dir, '3.eml'), 'x'.repeat(100));
    writeFileSync(join(dir, '4.eml'), 'four');
    const skipped: string[] = [];
    const found = [];
    for await (const message of readEmlDir(fs, dir, { messageBytesMax: 10, onSkip: (path, error) => skipped.push(`${path} ${error.code}`) })) {
      found.push(message.bytes.toString());
    }
    expect(found).toEqual(['one', 'four']);
    expect(skipped).toEqual([`${join(dir, '2.eml')} INVALID`, `${join(dir, '3.eml')} TOO_LARGE`]);
  });

  it('throws without onSkip, and INVALID for a file instead of a directory', async () => {
    const dir = tmp();
    symlinkSync(join(dir, 'gone'), join(dir, '1.eml'));
    await expect(readEmlDir(fs, dir).next()).rejects.toMatchObject({ code: 'INVALID', message: expect.stringContaining('symbolic link') });
    writeFileSync(join(dir, 'file'), 'x');
    await expect(readEmlDir(fs, join(dir, 'file')).next()).rejects.toMatchObject({ code: 'INVALID' });
  });
});

describe('listEmlFolders (issue 18 item 10)', () => {
  it('the root and every subdirectory holding a file, by path; a directory holding only directories is none', async () => {
    const dir = tmp();
    mkdirSync(join(dir, 'a', 'b', 'c'), { recursive: true });
    mkdirSync(join(dir, 'empty'));
    mkdirSync(join(dir, '.hidden'));
    writeFileSync(join(dir, '.hidden', 'm.eml'), 'x');
    writeFileSync(join(dir, 'a', 'b', 'c', 'm.eml'), 'x');
    writeFileSync(join(dir, 'a', 'm.eml'), 'x');
    symlinkSync(tmp(), join(dir, 'link')); // a link is a file entry of its folder, whose reader refuses it
    expect(await listEmlFolders(fs, dir)).toEqual([
      { folder: '', path: dir }, { folder: 'a', path: join(dir, 'a') }, { folder: 'a/b/c', path: join(dir, 'a', 'b', 'c') },
    ]);
  });

  it('readEmlDir with recursive: false reads a folder\'s own files only; noFollow refuses a folder that is a link', async () => {
    const dir = tmp();
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'x.eml'), 'x');
    writeFileSync(join(dir, 'sub', 'y.eml'), 'y');
    const own = [];
    for await (const message of readEmlDir(fs, dir, { recursive: false })) own.push(message.bytes.toString());
    expect(own).toEqual(['x']);
    symlinkSync(join(dir, 'sub'), join(dir, 'linked'));
    const skipped: string[] = [];
    const read = [];
    for await (const message of readEmlDir(fs, join(dir, 'linked'), { noFollow: true, onSkip: (_p, _e, reason) => skipped.push(reason) })) read.push(message);
    expect(read).toEqual([]);
    expect(skipped).toEqual(['symlink']);
  });
});
