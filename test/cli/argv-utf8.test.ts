// A name typed in another encoding (an outside tester's finding, session 46): node reads the
// command line as UTF-8 and writes U+FFFD for bytes that are not, so "Entw\xfcrfe" and "Entw\xe4rfe"
// (Latin-1) were one mailbox "Entw\ufffdrfe": the second create said EXISTS and a `mailbox delete`
// of the second deleted the first. Such an argument is refused (INVALID, exit 5); a U+FFFD typed as
// UTF-8 is a name like any other.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { refuseArgumentsNotUtf8 } from '../../src/cli/argv-utf8.js';
import { codeOf } from '../helpers/errors.js';
import { bin, json, ok, requireBuilt, tempDir } from './helpers.js';

/** `mailstore ARGS` with raw bytes in its arguments (spawn would encode strings as UTF-8). */
function runRaw(store: string, args: Buffer[]): { code: number | null; stderr: string } {
  const quoted = args.map((arg) => `$'${[...arg].map((b) => `\\x${b.toString(16).padStart(2, '0')}`).join('')}'`).join(' ');
  const done = spawnSync('bash', ['-c', `exec "${process.execPath}" "${bin}" --store "${store}" ${quoted}`]);
  return { code: done.status, stderr: done.stderr.toString() };
}

describe('arguments that are not UTF-8', () => {
  it('are refused before anything is done: two Latin-1 names are never one mailbox, a delete never takes the other', async () => {
    requireBuilt();
    const store = `${tempDir()}/s`;
    await ok(['--store', store, 'init']);
    await ok(['--store', store, 'mailbox', 'create', 'Entw\u00fcrfe']); // UTF-8: fine
    const created = runRaw(store, [Buffer.from('mailbox'), Buffer.from('create'), Buffer.from('Entw\xfcrfe', 'latin1')]);
    expect(created.code).toBe(5);
    expect(created.stderr).toMatch(/INVALID: the argument "Entw\\xfcrfe" is not UTF-8 .*two names one mailbox/);
    // a U+FFFD typed as UTF-8 is a name like any other
    await ok(['--store', store, 'mailbox', 'create', 'Entw\ufffdrfe']);
    const deleted = runRaw(store, [Buffer.from('mailbox'), Buffer.from('delete'), Buffer.from('Entw\xe4rfe', 'latin1'), Buffer.from('--force')]);
    expect(deleted.code).toBe(5);
    const names = (await json(['--store', store, 'mailbox', 'list', '--json'])) as unknown;
    expect(JSON.stringify(names)).toContain('Entw\ufffdrfe');
    expect(JSON.stringify(names)).toContain('Entw\u00fcrfe');
  });

  it('without /proc to tell a typed U+FFFD from bytes that are not UTF-8, an argument holding it is refused (was: taken as typed)', async () => {
    const missing = `${tempDir()}/no-proc/cmdline`;
    expect(await codeOf(Promise.resolve().then(() => refuseArgumentsNotUtf8(missing)))).toBe('INVALID');
    expect(() => refuseArgumentsNotUtf8(missing)).toThrow(/U\+FFFD.*cannot be read to tell which \(ENOENT\): refused, nothing was done/);
    expect(() => refuseArgumentsNotUtf8()).not.toThrow(); // this process's own arguments are UTF-8
  });
});
