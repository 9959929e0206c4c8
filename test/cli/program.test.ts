// The program loads only the command a command line names (start-up time, issue 16), and all of
// them whenever commander may list or suggest them: help, --version, an unknown or missing command.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildProgram, namedCommand } from '../../src/cli/program.js';
import { repoRoot, requireBuilt, tempDir } from './helpers.js';

const ALL = ['init', 'mailbox', 'append', 'fetch', 'messages', 'search', 'flags', 'expunge', 'clock', 'copy', 'move', 'acl', 'user', 'quota', 'usage', 'import', 'export', 'stats', 'scrub', 'reconstruct', 'rebuild-from-bucket',
  'consumers', 'events', 'tier', 'compact', 'backup', 'backups', 'restore', 'snapshot', 'config', 'serve', 'replica', 'promote', 'xfer', 'bench'];

async function registered(args: string[]): Promise<string[]> {
  return (await buildProgram(['node', 'mailstore', ...args])).commands.map((command) => command.name());
}

describe('namedCommand', () => {
  it('finds the command after global options, with or without their values', () => {
    expect(namedCommand(['append', 'INBOX', 'file'])).toBe('append');
    expect(namedCommand(['--store', 'append', 'scrub'])).toBe('scrub'); // a store directory named "append"
    expect(namedCommand(['--store=/s', '--wait', '5', 'fetch', 'INBOX', '1'])).toBe('fetch');
    expect(namedCommand(['--no-wait', 'mailbox', 'list'])).toBe('mailbox');
  });

  it('names none for help, an unknown command, no command or after --', () => {
    expect(namedCommand(['--help'])).toBeUndefined();
    expect(namedCommand(['help', 'append'])).toBeUndefined();
    expect(namedCommand(['apend', 'INBOX'])).toBeUndefined();
    expect(namedCommand(['--store', '/s'])).toBeUndefined();
    expect(namedCommand(['--', 'append'])).toBeUndefined();
  });
});

describe('buildProgram', () => {
  it('registers only the named command', async () => {
    expect(await registered(['--store', '/s', 'append', 'INBOX'])).toEqual(['append']);
    expect(await registered(['scrub', '--json'])).toEqual(['scrub']);
  });

  it('registers every command, in help order, when none is named or argv is not given', async () => {
    expect(await registered(['--help'])).toEqual(ALL);
    expect(await registered(['apend'])).toEqual(ALL);
    expect((await buildProgram()).commands.map((command) => command.name())).toEqual(ALL);
  });
});

describe('main, run more than once in a process (in-process.ts: a test file runs hundreds)', () => {
  it('adds no listener per command line: the 11th said "MaxListenersExceededWarning" in its stderr', async () => {
    requireBuilt();
    const { run } = await import('./in-process.js');
    const store = join(tempDir(), 'none');
    const before = process.listenerCount('SIGUSR1');
    await run(['--version']);
    const streams = () => ({ stdout: process.stdout.listenerCount('error'), stderr: process.stderr.listenerCount('error') });
    const streamsBefore = streams();
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
    process.on('warning', onWarning);
    try {
      for (let i = 0; i < 12; i++) {
        const result = await run(['--store', store, 'mailbox', 'list']);
        expect(result.code).toBe(4);
        expect(result.stderr).toMatch(/^mailstore: NOT_FOUND: [^\n]*\n$/);
        expect((await run(['--version'])).code).toBe(0);
      }
    } finally {
      process.off('warning', onWarning);
    }
    expect(process.listenerCount('SIGUSR1')).toBeLessThanOrEqual(before + 1);
    // the streams' own 'error' listeners (std-streams.ts hooks): one each, not one more per run
    expect(streams()).toEqual(streamsBefore);
    expect(warnings.filter((warning) => warning.includes('MaxListeners'))).toEqual([]);
  });

  it('runs a stream hook given again once (main() hooks the same handlers each run)', async () => {
    requireBuilt();
    const { whenCreated } = await import(pathToFileURL(join(repoRoot, 'dist/src/cli/std-streams.js')).href) as typeof import('../../src/cli/std-streams.js');
    let calls = 0;
    const hook = () => { calls++; };
    process.stderr.write('');
    whenCreated('stderr', hook);
    whenCreated('stderr', hook);
    void process.stderr;
    expect(calls).toBe(1);
  });
});
