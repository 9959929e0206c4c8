// The socket's directory serve creates: reachable by the socket's group whatever the umask, every
// level it had to make (an admin shell's umask 077 made them 0700, and the group the 0660 socket
// is for was refused at the first of them).
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureSocketDirectory } from '../../src/fs/socket-file.js';
import { tmpDir } from '../helpers/tmp.js';

const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);

describe('ensureSocketDirectory', () => {
  it('under umask 077, every directory it creates on the way to the socket is 0755; one that was there keeps its mode', async () => {
    const base = tmpDir('sockdir');
    const baseMode = mode(base);
    const umask = process.umask(0o077);
    try {
      await ensureSocketDirectory(join(base, 'run', 'mailstore', 'sock'));
    } finally {
      process.umask(umask);
    }
    expect([mode(join(base, 'run')), mode(join(base, 'run', 'mailstore')), mode(join(base, 'run', 'mailstore', 'sock'))]).toEqual(['755', '755', '755']);
    expect(mode(base)).toBe(baseMode);
  });

  it('a path spelled with doubled and trailing slashes: only what it created changes mode, never a directory above', async () => {
    const base = tmpDir('sockdir');
    const baseMode = mode(base);
    const umask = process.umask(0o077);
    try {
      await ensureSocketDirectory(`${base}//x/./y/`);
    } finally {
      process.umask(umask);
    }
    expect([mode(join(base, 'x')), mode(join(base, 'x', 'y'))]).toEqual(['755', '755']);
    expect(mode(base)).toBe(baseMode);
  });
});
