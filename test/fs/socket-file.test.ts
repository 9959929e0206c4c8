// The socket's directory serve creates: reachable by the socket's group whatever the umask, every
// level it had to make (an admin shell's umask 077 made them 0700, and the group the 0660 socket
// is for was refused at the first of them).
import { readFileSync, statSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ensureSocketDirectory, LogFile } from '../../src/fs/socket-file.js';
import { daemonLimits } from '../../src/limits.js';
import { answeredWithin } from '../../src/within.js';
import { bindfsUnavailable, hangableDir, releaseAll, until } from '../helpers/bindfs.js';
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

// The daemon's --log on a file system that hangs, for real (helpers/bindfs.ts): the stream held every
// line in memory for as long as the mount hung (one a delivery), and the daemon's stop waited for it
// until systemd killed the daemon.
describe.skipIf(bindfsUnavailable())('LogFile on a hung mount', () => {
  afterEach(releaseAll);

  it('hands the file at most logPendingBytesMax of lines; once it takes lines again, a log-lines-lost line counts the rest', async () => {
    const { dir, mount } = await hangableDir();
    const path = join(dir, 'serve.log');
    const file = new LogFile(path);
    const stream = () => (file as unknown as { stream: WriteStream }).stream;
    const line = `${JSON.stringify({ event: 'delivered', pad: 'x'.repeat(1000) })}\n`;
    const count = Math.ceil((2 * daemonLimits.logPendingBytesMax) / line.length);
    try {
      mount.hang();
      for (let i = 0; i < count; i++) file.write(line);
      expect(stream().writableLength).toBeLessThanOrEqual(daemonLimits.logPendingBytesMax + line.length);
    } finally {
      mount.resume();
    }
    await until(() => stream().writableLength === 0, 'the held lines written');
    file.write('{"event":"last"}\n');
    await file.close();
    const lines = readFileSync(path, 'utf8').split('\n').filter(Boolean).map((text) => JSON.parse(text) as { event: string; writesDropped?: number });
    const lost = lines.find((entry) => entry.event === 'log-lines-lost');
    const kept = lines.filter((entry) => entry.event === 'delivered').length;
    expect(lost?.writesDropped).toBe(count - kept);
    expect(kept).toBeGreaterThan(0);
    expect(lines.at(-1)!.event).toBe('last');
  });

  it('close gives up on a file that takes nothing after logCloseWaitMs, saying so on stderr', async () => {
    const { dir, mount } = await hangableDir();
    const file = new LogFile(join(dir, 'serve.log'));
    const said: string[] = [];
    const write = vi.spyOn(process.stderr, 'write').mockImplementation((text) => { said.push(String(text)); return true; });
    try {
      mount.hang();
      file.write('{"event":"stopping"}\n');
      expect(await answeredWithin(file.close(), 30_000)).toBe(true); // before: it waited for the mount, for ever
    } finally {
      write.mockRestore();
      mount.resume();
    }
    expect(said.join('')).toMatch(/the log \S+serve\.log took no lines for \d+ s \(a hung mount\?\)/);
  });
});
