// `npm run build` runs this after tsc: it bundles the CLI (dist/src/cli/main.js and what it imports)
// into a few chunks beside it, because node 20's ESM loader spent most of a short command's time
// resolving and compiling ~50 separate modules (docs/bench/cli-start-profile.md, issue 16). The chunks
// are CommonJS so that src/fs/module-cache.ts can compile them with V8's code cache (node 20 has no
// compile cache for ES modules); this build writes that cache by running a few commands once
// (--train). dist/src/cli/main.js is replaced by a small entry that loads the chunks, and the
// `mailstore` bin (main.cjs, from src/cli/main.cts) runs them through the loader as CommonJS while
// main.js is that entry; a later plain `tsc` writes main.js again and both run unbundled from the
// fresh modules (never a stale bundle). Commands still load their code on use: each
// dynamic import() becomes its own chunk. Packages with native parts or heavy optional ones stay
// outside the bundle and load from node_modules as before. Without rolldown (it comes with
// vitest's vite) the CLI stays unbundled.
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BundleLoader, IMPORT_FUNCTION, MAIN_CHUNK, MAIN_SHIM } from '../src/fs/module-cache.js';

const CLI_DIR = fileURLToPath(new URL('../src/cli/', import.meta.url));
/** Written here first and moved beside main.js only when complete, main.js last. */
const STAGING_DIR = fileURLToPath(new URL('../.cli-bundle/', import.meta.url));
const ENTRY = join(CLI_DIR, 'main.js');
/** Chunk names start with this, so the next build can remove the previous build's chunks. */
const CHUNK_PREFIX = 'bundle-';
/** The loader as CommonJS, for the CommonJS bin (src/cli/main.cts): no ES module at all in a command's start. */
const LOADER_CHUNK = `${CHUNK_PREFIX}loader.cjs`;
/** Loaded from node_modules: native bindings (found relative to their own files), or big and rarely used. */
const EXTERNAL = [/^@napi-rs\//, /^fs-ext$/, /^@mongodb-js\//, /^cbor-extract/, /^hash-wasm/, /^minio/, /^smtp-server/, /^nodemailer/, /^vega/, /^vega-lite/, /^node:/];

/**
 * LevelDB's JavaScript (level, classic-level, abstract-level and their ~25 small CommonJS files) is
 * bundled; only classic-level's binding loader stays in node_modules, because node-gyp-build finds
 * the native file from its own directory.
 */
const levelBinding = {
  name: 'classic-level-binding',
  resolveId(source: string, importer: string | undefined) {
    if (source === './binding' && importer && /[\\/]classic-level[\\/]/.test(importer)) return { id: 'classic-level/binding.js', external: true };
    return null;
  },
};

/**
 * The CLI bundle takes blake3-core.ts where the code imports blake3.ts: the same functions without
 * blake3.ts's top-level await, which a CommonJS bundle cannot hold (Store.open awaits hashReady).
 */
const blake3WithoutAwait = {
  name: 'blake3-without-top-level-await',
  resolveId(source: string, importer: string | undefined) {
    if (!importer || !/(^|\/)blake3\.js$/.test(source)) return null;
    const path = resolve(dirname(importer), source);
    return path.endsWith(join('src', 'hash', 'blake3.js')) ? path.replace(/blake3\.js$/, 'blake3-core.js') : null;
  },
};

/**
 * Commands left out of the bundle and loaded as the ES modules tsc wrote: the bench command's charts
 * import vega, an ES module with top-level await that CommonJS cannot require (it ran from the
 * bundle's own chunk when the bundle was ESM). Kept as program.js's import('./commands/NAME.js').
 */
const ES_MODULE_COMMANDS = ['bench'];

function staysOutside(specifier: string, importer: string): boolean {
  const command = /^\.\/commands\/([\w-]+)\.js$/.exec(specifier)?.[1];
  if (command) return ES_MODULE_COMMANDS.includes(command) && resolve(dirname(importer)) === resolve(CLI_DIR);
  return EXTERNAL.some((pattern) => pattern.test(specifier));
}

/**
 * A chunk runs through vm.Script, which has no import() in node 20 (not without an experimental
 * option that warns on stderr): a dynamic import of what stays outside the bundle becomes a call of
 * the loader's import function (src/fs/module-cache.ts). checkNoImport() below makes sure none is left.
 */
const outsideImports = {
  name: 'outside-dynamic-imports',
  transform(code: string, id: string) {
    if (id.includes('node_modules')) return null;
    const out = code.replace(/\bimport\((['"])([^'"]+)\1\)/g, (call, quote: string, specifier: string) =>
      (staysOutside(specifier, id) ? `${IMPORT_FUNCTION}(${quote}${specifier}${quote})` : call));
    return out === code ? null : { code: out, map: null };
  },
};

/** Every import() left in a chunk would fail at run time ("a dynamic import callback was not specified"). */
async function checkNoImport(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const code = (await readFile(join(dir, name), 'utf8')).replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
    const found = /(^|[^\w$.])import\(/.exec(code);
    if (found) throw new Error(`${name} calls import() (${code.slice(found.index, found.index + 60).trim()}), which its loader cannot serve; add it to EXTERNAL or ES_MODULE_COMMANDS`);
  }
}

/**
 * commander requires node:child_process when it loads (~2-4 ms of every start, docs/bench/
 * cli-start-profile.md) for executable subcommands, which mailstore has none of: in the bundle it is
 * required on first use. A commander whose first lines differ is bundled as it is.
 */
const commanderLazyChildProcess = {
  name: 'commander-lazy-child-process',
  transform(code: string, id: string) {
    if (!/[\\/]commander[\\/]lib[\\/]command\.js$/.test(id)) return null;
    const eager = "const childProcess = require('node:child_process');";
    if (!code.includes(eager)) return null;
    return { code: code.replace(eager, "const childProcess = { spawn: (...args) => require('node:child_process').spawn(...args) };"), map: null };
  },
};

interface Rolldown {
  build(options: unknown): Promise<unknown>;
}

async function loadRolldown(): Promise<Rolldown | undefined> {
  const name = 'rolldown'; // not a declared type dependency: tsc must not need it
  return (await import(name).catch(() => undefined)) as Rolldown | undefined;
}

async function removeOldChunks(): Promise<void> {
  for (const name of await readdir(CLI_DIR)) {
    if (name.startsWith(CHUNK_PREFIX) && /\.(js|cjs|cjs\.v8cache)$/.test(name)) await unlink(join(CLI_DIR, name));
  }
}

async function bundle(): Promise<void> {
  const rolldown = await loadRolldown();
  if (!rolldown) {
    process.stderr.write('bundle-cli: rolldown is not installed; the CLI runs unbundled (slower start)\n');
    return;
  }
  await rm(STAGING_DIR, { recursive: true, force: true });
  await mkdir(STAGING_DIR, { recursive: true });
  try {
    await build(rolldown);
    await checkNoImport(STAGING_DIR);
    await buildLoader(rolldown);
  } catch (error) {
    // a bundle is only faster, never needed: say why and keep tsc's entry
    process.stderr.write(`bundle-cli: bundling failed, the CLI runs unbundled: ${error instanceof Error ? error.message : String(error)}\n`);
    await rm(STAGING_DIR, { recursive: true, force: true });
    return;
  }
  await removeOldChunks();
  for (const name of await readdir(STAGING_DIR)) await rename(join(STAGING_DIR, name), join(CLI_DIR, name));
  await writeFile(join(STAGING_DIR, '..', 'main.js.tmp'), MAIN_SHIM);
  await rename(join(STAGING_DIR, '..', 'main.js.tmp'), ENTRY);
  await rm(STAGING_DIR, { recursive: true, force: true });
  await train();
}

/**
 * Runs the commands a mail server runs most, each in its own process as a user would, and keeps
 * the code cache of every chunk they loaded (written at exit, after the functions ran, so the cache
 * holds them compiled). `append` goes last: its cache of the shared chunks is the one kept.
 */
async function train(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mailstore-cache-'));
  try {
    const message = join(dir, 'message.eml');
    await writeFile(message, 'From: a@example.org\r\nTo: b@example.org\r\nSubject: code cache\r\n\r\nhello\r\n');
    const store = join(dir, 'store');
    for (const args of [['--help'], ['--store', store, 'init'], ['--store', store, 'mailbox', 'create', 'INBOX'], ['--store', store, 'append', 'INBOX', message]]) {
      const run = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--train', ...args], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
      // a cache is only faster: a failed run leaves the chunks it did not reach without one
      if (run.status !== 0) process.stderr.write(`bundle-cli: training run "${args.join(' ')}" failed (exit ${run.status}); some chunks have no code cache: ${run.stderr}\n`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** One training run: the bundled CLI with `args`, its chunks' caches written when it exits. */
function trainRun(args: string[]): void {
  process.argv = [process.execPath, ENTRY, ...args];
  new BundleLoader(CLI_DIR, { writeCache: true }).load(join(CLI_DIR, MAIN_CHUNK));
}

/**
 * module-cache.ts as one CommonJS file (LOADER_CHUNK) that main.cjs requires: node starts its ES
 * module loader for an ES module entry (main.js and module-cache.js are ES modules, the package
 * being "type": "module"), ~5-9 ms of every command that a CommonJS entry does not pay (issue 16).
 */
function buildLoader(rolldown: Rolldown): Promise<unknown> {
  return rolldown.build({
    input: fileURLToPath(new URL('../src/fs/module-cache.js', import.meta.url)),
    platform: 'node',
    external: [/^node:/],
    logLevel: 'warn',
    output: { file: join(STAGING_DIR, LOADER_CHUNK), format: 'cjs', sourcemap: false, comments: { legal: true, annotation: false, jsdoc: false } },
  });
}

function build(rolldown: Rolldown): Promise<unknown> {
  return rolldown.build({
    input: ENTRY,
    platform: 'node',
    external: EXTERNAL,
    plugins: [levelBinding, blake3WithoutAwait, outsideImports, commanderLazyChildProcess],
    logLevel: 'warn',
    output: {
      dir: STAGING_DIR,
      format: 'cjs',
      entryFileNames: MAIN_CHUNK,
      chunkFileNames: `${CHUNK_PREFIX}[name]-[hash].cjs`,
      sourcemap: false,
      // Every start reads, checksums and copies each chunk it loads (module-cache.ts): ASCII is
      // copied into a one-byte string without the UTF-8 decoder, and the doc comments (a third of
      // the bytes) are for the sources, not for V8, which runs the chunks from its code cache.
      charset: 'ascii',
      comments: { legal: true, annotation: false, jsdoc: false },
    },
  });
}

if (process.argv[2] === '--train') trainRun(process.argv.slice(3));
else await bundle();
