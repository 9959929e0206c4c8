// A script that asks for --json parses stdout: a failure must be a JSON object there too, of one
// shape for every command and every kind of failure (the stderr line stays for people and cron).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { json, ok, requireBuilt, run, tempDir, type RunOptions } from './helpers.js';

beforeAll(requireBuilt);

interface JsonError { error: { code: string; message: string; exitCode: number; path?: string } }

/** Runs a command that must fail; returns its stdout parsed, checked against its exit code and stderr line. */
async function failure(args: string[], options: RunOptions = {}): Promise<JsonError['error']> {
  const result = await run(args, options);
  expect(result.code, result.stderr).not.toBe(0);
  const text = result.stdout.toString('utf8');
  const lines = text.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  const parsed = JSON.parse(lines[0]) as JsonError;
  expect(Object.keys(parsed)).toEqual(['error']);
  expect(parsed.error.exitCode).toBe(result.code);
  expect(result.stderr).toContain(`mailstore: ${parsed.error.code}: `);
  return parsed.error;
}

describe('--json on failure', () => {
  it('prints {error: {code, message, exitCode, path?}} on stdout for every kind of failure', async () => {
    const dir = tempDir();
    const store = join(dir, 'store');
    await ok(['init'], { store });
    await ok(['mailbox', 'create', 'user/alice/INBOX'], { store });
    await ok(['append', 'user/alice/INBOX', '-'], { store, input: 'Subject: one\r\n\r\nbody\r\n' });

    const missing = await failure(['stats', '--json'], { store: join(dir, 'none') });
    expect(missing).toMatchObject({ code: 'NOT_FOUND', exitCode: 4, path: join(dir, 'none') });
    expect((await failure(['messages', 'user/bob/INBOX', '--json'], { store })).code).toBe('NOT_FOUND');
    expect(await failure(['mailbox', 'create', 'user/alice/INBOX', '--json'], { store })).toMatchObject({ code: 'EXISTS', exitCode: 5 });
    expect(await failure(['stats', '--json', '--bogus'], { store })).toMatchObject({ code: 'INVALID', exitCode: 5 }); // the command line
    expect(await failure(['--wait', 'x', 'scrub', '--json'], { store })).toMatchObject({ code: 'INVALID', exitCode: 5 });
    expect(await failure(['events', '--since', '99', '--json'], { store })).toMatchObject({ code: 'INVALID', exitCode: 5 });
    expect(await failure(['append', 'user/bob/INBOX', '-', '--sysexits', '--json'], { store, input: 'x' })).toMatchObject({ code: 'NOT_FOUND', exitCode: 67 });

    const { Store } = await import('../../src/store/store.js');
    const held = await Store.open(store);
    try {
      expect(await failure(['--no-wait', 'scrub', '--jsonl'], { store })).toMatchObject({ code: 'LOCKED', exitCode: 2 });
    } finally {
      await held.close();
    }
    // what succeeded still prints its own document, unchanged
    expect((await json(['stats'], { store })).messages).toBe(1);
    // without --json stdout stays empty on failure
    expect((await run(['stats'], { store: join(dir, 'none') })).stdout.length).toBe(0);

    // a failure after the command's own summary (export, then CORRUPT): the summary stays the one document
    await ok(['append', 'user/alice/INBOX', '-'], { store, input: `Subject: big\r\n\r\n${'x'.repeat(40_000)}\r\n` }); // over the inline threshold: in a pack
    const pack = join(store, 'packs', '00000001.pack');
    const bytes = readFileSync(pack);
    bytes[bytes.length - 100] ^= 1;
    writeFileSync(pack, bytes);
    const exported = await run(['export', 'user/alice/INBOX', '--format', 'mbox', '--out', join(dir, 'out.mbox'), '--json'], { store });
    expect(exported.code, exported.stderr).toBe(6);
    expect((JSON.parse(exported.stdout.toString('utf8')) as { corrupt: unknown[] }).corrupt).toHaveLength(1);
  });
});
