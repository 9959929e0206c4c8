// The CLI against hostile input (issue 10): `append --date` with impossible calendar dates or
// dates out of the store's range is exit 5 (INVALID) and stores nothing, instead of being rolled
// over (2024-02-30 became March 1, -1 became 2001) or stored and then failing every export; a LIST
// pattern that made the old backtracking matcher run for minutes answers at once.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { bin, requireBuilt, tempDir } from './helpers.js';
// command lines in this process (in-process.ts, which checks a sample against the spawned command);
// what only a process shows is commands.test.ts's and environment.test.ts's
import { json, ok, run } from './in-process.js';

beforeAll(requireBuilt);

const message = Buffer.from('From: a@example.org\r\nSubject: dated\r\n\r\nbody\r\n');

describe('append --date', () => {
  it('refuses impossible and out-of-range dates with exit 5, keeps real ones exact', async () => {
    const store = join(tempDir(), 'store');
    await ok(['init'], { store });
    await ok(['mailbox', 'create', 'INBOX'], { store });
    for (const date of ['2024-02-30', '2023-02-29T12:00:00Z', '-1', '1e20', '100000000000000', '10000-01-01', '1969-12-31T23:59:59Z', '31 Apr 2024 10:00:00 +0000', 'soon']) {
      const result = await run(['append', 'INBOX', '-', '--date', date], { store, input: message });
      expect(result.code, `--date ${date}: ${result.stderr}`).toBe(5);
      expect(result.stderr).toMatch(/date/);
    }
    expect((await json(['mailbox', 'status', 'INBOX'], { store })).messages).toBe(0);
    const good: [string, string][] = [
      ['2024-02-29T10:00:00Z', '2024-02-29T10:00:00.000Z'], ['Thu, 29 Feb 2024 10:00:00 +0100', '2024-02-29T09:00:00.000Z'],
      ['0', '1970-01-01T00:00:00.000Z'], ['253402300799', '9999-12-31T23:59:59.000Z'],
    ];
    for (const [date, iso] of good) {
      const { uid } = await json(['append', 'INBOX', '-', '--date', date], { store, input: Buffer.concat([message, Buffer.from(date)]) });
      expect(await ok(['fetch', 'INBOX', String(uid), '--info'], { store })).toContain(`internal-date ${iso}`);
    }
  });
});

describe('mailbox list PATTERN', () => {
  it('matches IMAP wildcards in linear time: 200 a-s against an 8-wildcard pattern', async () => {
    const store = join(tempDir(), 'store');
    await ok(['init'], { store });
    const long = 'a'.repeat(200);
    for (const name of [long, 'a/b', 'a/b/c', 'x']) await ok(['mailbox', 'create', name], { store });
    // The old matcher ran for minutes here; a hang would fail the test's timeout (no timed assertion).
    expect(await json(['mailbox', 'list', '*a*a*a*a*a*a*a*a*c'], { store })).toEqual([]);
    expect((await json(['mailbox', 'list', 'a/%'], { store })).map((m: { name: string }) => m.name)).toEqual(['a/b']);
    expect((await json(['mailbox', 'list', 'a/*'], { store })).map((m: { name: string }) => m.name)).toEqual(['a/b', 'a/b/c']);
    expect((await run(['mailbox', 'list', 'a\u202e*'], { store })).code).toBe(5);
  });
});

describe('fetch to a terminal', () => {
  it('shows a hostile message\'s escape sequences instead of running them (util-linux script gives it a pty); a pipe still gets the exact bytes', async () => {
    expect(spawnSync('sh', ['-c', 'command -v script']).status, 'util-linux script is needed for a pty').toBe(0);
    const store = join(tempDir('mailstore-fetch-tty-'), 'store');
    await ok(['init'], { store });
    await ok(['mailbox', 'create', 'INBOX'], { store });
    // OSC 0 sets the window title; CSI 2J clears the screen, in its 7-bit and 8-bit (U+009B) forms
    const hostile = Buffer.from('From: a@example.org\r\nSubject: \x1b]0;owned\x07\x1b[2J\u009b2J\u202eexe.pdf\r\n\r\nbody\r\n');
    const file = join(tempDir(), 'm.eml');
    writeFileSync(file, hostile);
    await ok(['append', 'INBOX', file], { store });
    const command = `${JSON.stringify(process.execPath)} ${JSON.stringify(bin)} --store ${JSON.stringify(store)} fetch INBOX 1`;
    const shown = spawnSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8' });
    expect(shown.status, shown.stderr).toBe(0);
    expect(shown.stdout).not.toMatch(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e]/); // the pty turns each \n into \r\n
    expect(shown.stdout).toContain('Subject: \\x1b]0;owned\\x07\\x1b[2J\\x9b2J\\u202eexe.pdf\r\n');
    const piped = await run(['fetch', 'INBOX', '1'], { store });
    expect(piped.stdout.equals(hostile)).toBe(true);
  });
});
