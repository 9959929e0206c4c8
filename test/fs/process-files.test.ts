// The holder's command in a LOCKED message (src/fs/process-files.ts): what /proc says a process runs,
// as one short line an admin reads ("process 4711 (mailstore compact)").
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { describeCommandLine, processCommand } from '../../src/fs/process-files.js';
import { limits } from '../../src/limits.js';

describe('describeCommandLine', () => {
  it('the CLI (bundle entry, the package wrapper, the source) is "mailstore ARGS"; anything else its program and arguments', () => {
    expect(describeCommandLine(['/usr/bin/node', '/opt/mailstore/dist/src/cli/main.js', '--store', '/var/spool/m', 'compact'])).toBe('mailstore --store /var/spool/m compact');
    // the bin (package.json, the .deb's wrapper) is the CommonJS entry
    expect(describeCommandLine(['/usr/bin/node', '/usr/lib/mailstore/dist/src/cli/main.cjs', '--store', '/var/spool/m', 'append', 'INBOX'])).toBe('mailstore --store /var/spool/m append INBOX');
    expect(describeCommandLine(['/bin/sh', '/usr/bin/mailstore', 'backup', '--repo', '/mnt/b'])).toBe('mailstore backup --repo /mnt/b');
    expect(describeCommandLine(['/usr/local/bin/node', 'imapd.js', '--port', '143'])).toBe('node imapd.js --port 143');
  });

  it('one line without parentheses or control characters, cut to limits.lockHolderCommandCharsMax', () => {
    const text = describeCommandLine(['node', 'dist/src/cli/main.js', 'import', 'a\nb (1)\x1b', 'x'.repeat(500)])!;
    expect(text.startsWith('mailstore import a?b [1]? x')).toBe(true);
    expect(text).toHaveLength(limits.lockHolderCommandCharsMax);
    expect(text.endsWith('...')).toBe(true);
    expect(describeCommandLine([])).toBeUndefined();
  });
});

describe.runIf(process.platform === 'linux')('processCommand', () => {
  it('reads a live process\'s command line from /proc; a gone one is undefined', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      expect(await processCommand(child.pid!)).toBe('sleep 30');
    } finally {
      child.kill('SIGKILL');
      await new Promise((done) => child.on('close', done));
    }
    expect(await processCommand(child.pid!)).toBeUndefined();
  });
});
