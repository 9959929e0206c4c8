// A --repo that leads nowhere, as an admin's typo or a stale link gives it: each command says what
// is wrong with the path (a clear code, nothing written), never that the repository is damaged.
import { readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { requireBuilt, tempDir } from '../cli/helpers.js';
import { ok, run } from '../cli/in-process.js';

describe('a --repo path that leads nowhere', () => {
  it('a loop of symbolic links is INVALID (exit 5) for backup, backups, check, repair, forget and restore, not CORRUPT; a file is INVALID; nothing is written', { timeout: 60_000 }, async () => {
    requireBuilt();
    const dir = tempDir('mailstore-repo-paths-');
    const store = join(dir, 's');
    await ok(['--store', store, 'init']);
    await ok(['--store', store, 'mailbox', 'create', 'M']);
    await ok(['--store', store, 'append', 'M', '-'], { input: 'Subject: x\r\n\r\nbody\r\n' });
    symlinkSync('loop2', join(dir, 'loop1'));
    symlinkSync('loop1', join(dir, 'loop2'));
    writeFileSync(join(dir, 'afile'), 'hi');
    const before = readdirSync(dir).sort();
    for (const repo of [join(dir, 'loop1'), join(dir, 'loop1', 'sub')]) {
      for (const args of [['--store', store, 'backup', '--repo', repo], ['backups', '--repo', repo], ['backup', 'check', '--repo', repo], ['backup', 'repair', '--repo', repo],
        ['backup', 'forget', '--repo', repo, '--keep-last', '1'], ['restore', '--repo', repo, '--to', join(dir, 'r')]]) {
        const r = await run(args);
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(5);
        expect(r.stderr).toMatch(/INVALID: .*a directory above it is a loop of symbolic links \(ELOOP\)/);
      }
    }
    const file = await run(['--store', store, 'backup', '--repo', join(dir, 'afile')]);
    expect(file.code).toBe(5);
    expect(file.stderr).toContain(`INVALID: ${join(dir, 'afile')} exists and is not a directory`);
    expect(file.stderr).not.toContain('same file system'); // no repository was made, so none to warn about
    expect(readdirSync(dir).sort()).toEqual(before);
  });
});
