// A user's machine where a dependency does not load (a package missing, a native binary built for
// another node or libc): every command either works on the fallback or fails with a clear code
// naming what to reinstall; nothing acknowledged is lost. The failure is simulated by a preloaded
// hook (test/helpers/unloadable-modules.cjs); node_modules is left as it is.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { json, newStore, ok, requireBuilt, run, tempDir, type RunOptions } from './helpers.js';

beforeAll(requireBuilt);

const hook = join(import.meta.dirname, '../helpers/unloadable-modules.cjs');

/** RunOptions for a machine where the modules matching `pattern` do not load. */
function without(pattern: string, options: RunOptions = {}): RunOptions {
  const nodeOptions = `${process.env.NODE_OPTIONS ?? ''} --require ${hook}`.trim();
  return { ...options, env: { ...options.env, NODE_OPTIONS: nodeOptions, MAILSTORE_TEST_UNLOADABLE: pattern } };
}

describe('classic-level (LevelDB) does not load', () => {
  it('commands needing no store work; one opening a store fails IO naming what to reinstall (75 with --sysexits); the store is as it was', async () => {
    const store = await newStore(['INBOX'], 'mailstore-deps-');
    const work = tempDir('mailstore-deps-');
    const message = join(work, 'm.eml');
    writeFileSync(message, 'Subject: kept\r\n\r\nbody\r\n');
    await ok(['append', 'INBOX', message], { store });
    const repo = join(work, 'repo');
    await ok(['backup', '--repo', repo], { store });
    const broken = (options: RunOptions = {}) => without('classic-level', { store, ...options });

    const version = await run(['--version'], broken());
    expect([version.code, version.stderr]).toEqual([0, '']);
    const check = await run(['backup', 'check', '--repo', repo], broken());
    expect([check.code, check.stderr]).toEqual([0, '']);

    const append = await run(['append', 'INBOX', message], broken());
    expect(append.code, append.stderr).toBe(2);
    expect(append.stderr).toMatch(/^mailstore: IO: LevelDB's native module \(classic-level\) does not load in node v[\d.]+ on \w+-\w+: .*'npm rebuild classic-level'/);
    expect(append.stdout.length).toBe(0);
    const mta = await run(['append', '--sysexits', 'INBOX', message], broken());
    expect(mta.code, mta.stderr).toBe(75);

    expect((await json(['mailbox', 'status', 'INBOX'], { store })).messages).toBe(1);
    expect((await run(['scrub'], { store })).code).toBe(0);
  });
});
