// The CLI bundle's code cache (src/fs/module-cache.ts): a cache is used only for the exact source it
// was made from, and a missing, truncated, garbage, damaged, stale or V8-rejected one means a normal
// compile with the same result, silently.
import { spawnSync } from 'node:child_process';
import { isAscii } from 'node:buffer';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BundleLoader, CACHE_SUFFIX, readCache, writeCache } from '../../src/fs/module-cache.js';
import { repoRoot, tempDir } from '../cli/helpers.js';

/** Two chunks as the bundler writes them: the entry requires the other, a builtin, and imports an ES module. */
function writeChunks(dir: string): void {
  writeFileSync(join(dir, 'bundle-main.cjs'), `#!/usr/bin/env node
const { join } = require('node:path');
const { triple } = require('./bundle-b.cjs');
function sum(n) { let s = 0; for (let i = 1; i <= n; i++) s += triple(i); return s; }
exports.answer = sum(10);
exports.strict = (function () { return this; })() === undefined;
exports.here = join(__dirname, 'x') === ${JSON.stringify(join(dir, 'x'))};
exports.later = () => __mailstoreImport('./esm.mjs').then((m) => m.value);
`);
  writeFileSync(join(dir, 'bundle-b.cjs'), 'exports.triple = (x) => 3 * x;\n');
  writeFileSync(join(dir, 'esm.mjs'), 'export const value = 7;\n');
}

interface Loaded { answer: number; strict: boolean; here: boolean; later: () => Promise<number> }

function load(dir: string): { exports: Loaded; loader: BundleLoader } {
  const loader = new BundleLoader(dir);
  return { exports: loader.load(join(dir, 'bundle-main.cjs')) as Loaded, loader };
}

async function expectRight(exports: Loaded): Promise<void> {
  expect(exports.answer).toBe(165);
  expect(exports.strict).toBe(true);
  expect(exports.here).toBe(true);
  expect(await exports.later()).toBe(7);
}

function trained(): string {
  const dir = tempDir('mailstore-cache-');
  writeChunks(dir);
  load(dir).loader.saveCaches();
  expect(existsSync(join(dir, `bundle-main.cjs${CACHE_SUFFIX}`))).toBe(true);
  return dir;
}

describe('BundleLoader', () => {
  it('runs chunks without a cache (missing), then with the cache it saved (used), with the same results', async () => {
    const dir = tempDir('mailstore-cache-');
    writeChunks(dir);
    const first = load(dir);
    await expectRight(first.exports);
    expect(Object.fromEntries(first.loader.outcomes)).toEqual({ 'bundle-main.cjs': 'missing', 'bundle-b.cjs': 'missing' });
    first.loader.saveCaches();
    const second = load(dir);
    await expectRight(second.exports);
    expect(Object.fromEntries(second.loader.outcomes)).toEqual({ 'bundle-main.cjs': 'used', 'bundle-b.cjs': 'used' });
  });

  const damages: [string, (cache: Buffer) => Buffer][] = [
    ['garbage', (cache) => Buffer.alloc(cache.length, 0x5a)],
    ['truncated to its header', (cache) => cache.subarray(0, 12)],
    ['truncated in its data', (cache) => cache.subarray(0, cache.length >> 1)],
    ['empty', () => Buffer.alloc(0)],
    ['one flipped bit in the V8 data', (cache) => { const copy = Buffer.from(cache); copy[copy.length - 9] ^= 0x10; return copy; }],
  ];
  for (const [name, damage] of damages) {
    it(`a ${name} cache is not given to V8: normal compile, same results`, async () => {
      const dir = trained();
      const path = join(dir, `bundle-main.cjs${CACHE_SUFFIX}`);
      writeFileSync(path, damage(readFileSync(path)));
      const { exports, loader } = load(dir);
      await expectRight(exports);
      expect(loader.outcomes.get('bundle-main.cjs')).toBe('invalid');
      expect(loader.outcomes.get('bundle-b.cjs')).toBe('used');
    });
  }

  it('a cache of another source of the same length (V8 checks only the length) is not used', async () => {
    const dir = trained();
    const path = join(dir, 'bundle-b.cjs');
    writeFileSync(path, 'exports.triple = (x) => 4 * x;\n'); // same length, other code
    const { exports, loader } = load(dir);
    expect(exports.answer).toBe(220);
    expect(loader.outcomes.get('bundle-b.cjs')).toBe('invalid');
  });

  it('a chunk with non-ASCII text is decoded as UTF-8, with and without its cache', () => {
    const dir = tempDir('mailstore-cache-');
    writeFileSync(join(dir, 'bundle-main.cjs'), "exports.text = '60 µs — ≥ 2×';\n");
    const first = new BundleLoader(dir);
    expect((first.load(join(dir, 'bundle-main.cjs')) as { text: string }).text).toBe('60 µs — ≥ 2×');
    first.saveCaches();
    const second = new BundleLoader(dir);
    expect((second.load(join(dir, 'bundle-main.cjs')) as { text: string }).text).toBe('60 µs — ≥ 2×');
    expect(second.outcomes.get('bundle-main.cjs')).toBe('used');
  });

  it('a cache V8 rejects (other flags: another node or options) compiles normally, same results', () => {
    const dir = trained();
    const module = join(repoRoot, 'dist/src/fs/module-cache.js');
    const script = `const { BundleLoader } = await import(${JSON.stringify(module)});
      const loader = new BundleLoader(${JSON.stringify(dir)});
      const m = loader.load(${JSON.stringify(join(dir, 'bundle-main.cjs'))});
      console.log(JSON.stringify({ answer: m.answer, later: await m.later(), outcomes: Object.fromEntries(loader.outcomes) }));`;
    const ran = spawnSync(process.execPath, ['--stack-size=900', '--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(ran.status, ran.stderr).toBe(0);
    expect(ran.stderr).toBe('');
    expect(JSON.parse(ran.stdout)).toEqual({ answer: 165, later: 7, outcomes: { 'bundle-main.cjs': 'rejected', 'bundle-b.cjs': 'rejected' } });
  });
});

describe('readCache and writeCache', () => {
  it('give back the data for the same source; undefined without a file; null for another source', () => {
    const dir = tempDir('mailstore-cache-');
    const path = join(dir, 'c.v8cache');
    expect(readCache(path, Buffer.from('source'))).toBeUndefined();
    writeCache(path, Buffer.from('source'), Buffer.from('v8 data'));
    expect(readCache(path, Buffer.from('source'))?.toString()).toBe('v8 data');
    expect(readCache(path, Buffer.from('sourcf'))).toBeNull();
  });

  it('a cache that cannot be written (no such directory) is left out, no error', () => {
    const path = join(tempDir('mailstore-cache-'), 'missing', 'c.v8cache');
    expect(() => writeCache(path, Buffer.from('source'), Buffer.from('x'))).not.toThrow();
    expect(readCache(path, Buffer.from('source'))).toBeUndefined();
  });
});

/** Built by `npm run build` (tools/bundle-cli.ts); a plain tsc leaves the CLI unbundled and these are skipped. */
const cliDir = join(repoRoot, 'dist/src/cli');
const bundled = existsSync(join(cliDir, 'bundle-main.cjs')) && readFileSync(join(cliDir, 'main.js'), 'utf8').includes('bundle-main.cjs');

// `npm test` builds first (npm run build): there a CLI left unbundled is a failed bundle, which the
// build only warns about (the CLI still runs, slower), so it fails here instead of skipping below.
it.runIf(process.env.npm_lifecycle_event === 'test')('npm test: the build bundled the CLI', () => {
  expect(bundled, 'tools/bundle-cli.ts fell back to the unbundled CLI: see the build output for why').toBe(true);
});

describe.skipIf(!bundled)('the bundled CLI', () => {
  function cli(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
    return spawnSync(process.execPath, [join(cliDir, 'main.js'), ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  }

  it('an append runs every chunk it loads from the cache the build trained', () => {
    const dir = tempDir('mailstore-cache-');
    const store = join(dir, 'store');
    writeFileSync(join(dir, 'm.eml'), 'Subject: cached\r\n\r\nbody\r\n');
    expect(cli(['--store', store, 'init']).status).toBe(0);
    expect(cli(['--store', store, 'mailbox', 'create', 'INBOX']).status).toBe(0);
    const module = join(repoRoot, 'dist/src/fs/module-cache.js');
    const script = `const { BundleLoader } = await import(${JSON.stringify(module)});
      process.argv = [process.execPath, ${JSON.stringify(join(cliDir, 'main.js'))}, '--store', ${JSON.stringify(store)}, 'append', 'INBOX', ${JSON.stringify(join(dir, 'm.eml'))}];
      const loader = new BundleLoader(${JSON.stringify(cliDir + '/')});
      loader.load(${JSON.stringify(join(cliDir, 'bundle-main.cjs'))});
      process.on('exit', () => process.stderr.write(JSON.stringify(Object.fromEntries(loader.outcomes))));`;
    const ran = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(ran.status, ran.stderr).toBe(0);
    expect(ran.stdout.trim()).toBe('1');
    const outcomes = JSON.parse(ran.stderr) as Record<string, string>;
    expect(Object.keys(outcomes)).toContain('bundle-main.cjs');
    expect(Object.entries(outcomes).filter(([, outcome]) => outcome !== 'used')).toEqual([]);
  });

  it('every chunk is ASCII (the build escapes the rest), so the loader copies it without the UTF-8 decoder', () => {
    const chunks = readdirSync(cliDir).filter((name) => name.startsWith('bundle-') && name.endsWith('.cjs'));
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.filter((name) => !isAscii(readFileSync(join(cliDir, name))))).toEqual([]);
  });

  it('without the native BLAKE3 (MAILSTORE_HASH=wasm) the bundle waits for the WebAssembly hasher: same hash, same bytes back', () => {
    const dir = tempDir('mailstore-cache-');
    const store = join(dir, 'store');
    const message = 'Subject: wasm\r\n\r\nbody\r\n';
    writeFileSync(join(dir, 'm.eml'), message);
    expect(cli(['--store', store, 'init']).status).toBe(0);
    expect(cli(['--store', store, 'mailbox', 'create', 'INBOX']).status).toBe(0);
    const wasm = cli(['--store', store, 'append', '--json', 'INBOX', join(dir, 'm.eml')], { MAILSTORE_HASH: 'wasm' });
    expect(wasm.status, wasm.stderr).toBe(0);
    const native = cli(['--store', store, 'append', '--json', 'INBOX', join(dir, 'm.eml')]);
    expect((JSON.parse(native.stdout) as { hash: string; deduplicated: boolean })).toMatchObject({ hash: (JSON.parse(wasm.stdout) as { hash: string }).hash, deduplicated: true });
    expect(cli(['--store', store, 'fetch', 'INBOX', '1'], { MAILSTORE_HASH: 'wasm' }).stdout).toBe(message);
  });
});
