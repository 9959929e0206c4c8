// Loads the bundled CLI (CommonJS chunks that tools/bundle-cli.ts writes beside dist/src/cli/main.js)
// with V8's code cache: compiling the ~600 kB an `append` loads, and its functions again as they first
// run, was a large part of a short command's start (docs/bench/cli-start-profile.md, issue 16). Node 20
// has no module.enableCompileCache, so each chunk is compiled here through vm.Script with the cache
// data the build wrote (the classic v8-compile-cache way). It lives in src/fs because it reads files
// synchronously (require is synchronous); it reads code, never store data.
//
// A cache file is used only when its own checksums hold for the chunk's exact source: V8 checks its
// version and flags but only the length of the source, and not the data in a release build, so a stale
// or damaged cache would otherwise run as wrong code. Anything wrong (missing, truncated, garbage,
// another node, other flags) means a normal compile: a cache only ever makes a start faster.
import { createRequire } from 'node:module';
import { basename, dirname, join, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Script as ScriptType } from 'node:vm';

// Required, not imported: an ES import of node:fs builds its ES module facade, which reads every
// export, and fs.ReadStream and its kin load node's ~20 stream modules (~2 ms of every start).
const require = createRequire(import.meta.url);
const { readFileSync, renameSync, unlinkSync, writeFileSync } = require('node:fs') as typeof import('node:fs');
const { isAscii } = require('node:buffer') as typeof import('node:buffer');
const { Script } = require('node:vm') as typeof import('node:vm');
const { crc32 } = require('node:zlib') as typeof import('node:zlib');

/** The file name of a chunk's cache: beside the chunk. */
export const CACHE_SUFFIX = '.v8cache';
/** magic(4) crc32 of the chunk's source(4) crc32 of the V8 data(4), then the V8 data. */
const MAGIC = Buffer.from('MSC1');
const HEADER_BYTES = 12;
/** What a chunk calls instead of import() (tools/bundle-cli.ts rewrites the calls). */
export const IMPORT_FUNCTION = '__mailstoreImport';
/** The bundle's entry chunk (tools/bundle-cli.ts names it so). */
export const MAIN_CHUNK = 'bundle-main.cjs';
/**
 * What main.js is while the bundle beside it is current: tools/bundle-cli.ts writes it there after
 * the chunks, and a later plain `tsc` writes tsc's unbundled entry over it.
 */
export const MAIN_SHIM = `#!/usr/bin/env node
// Written by tools/bundle-cli.ts (npm run build): the CLI is bundled into the CommonJS chunks beside
// this file and compiled with V8's code cache (src/fs/module-cache.ts; issue 16, start-up time).
import { fileURLToPath } from 'node:url';
import { BundleLoader } from '../fs/module-cache.js';

const dir = fileURLToPath(new URL('.', import.meta.url));
new BundleLoader(dir, { importModule: (specifier) => import(specifier) }).load(dir + '${MAIN_CHUNK}');
`;
/** The only specifiers the loader serves itself: the bundle's own chunks, required as './bundle-*.cjs'. */
const CHUNK_SPECIFIER = /^\.\/[\w.-]+\.cjs$/;

interface ChunkModule {
  exports: unknown;
  id: string;
  filename: string;
  loaded: boolean;
}

/** What happened to each chunk's cache (tests and the profile tools read it). */
export type CacheOutcome = 'used' | 'rejected' | 'invalid' | 'missing';

export interface BundleLoaderOptions {
  /** Write each loaded chunk's cache when the process exits (the build's training runs). */
  writeCache?: boolean;
  /**
   * import() from an ES module (the CLI's entry): code compiled through vm.Script cannot call
   * import() itself in node 20 without an experimental option, so the build turns a chunk's
   * import('x') of what stays outside the bundle into __mailstoreImport('x'), served by this.
   */
  importModule?: (specifier: string) => Promise<unknown>;
}

export class BundleLoader {
  readonly outcomes = new Map<string, CacheOutcome>();
  private readonly modules = new Map<string, ChunkModule>();
  private readonly scripts = new Map<string, { script: ScriptType; bytes: Buffer }>();
  private readonly nodeRequire: NodeJS.Require;

  private readonly importModule: (specifier: string) => Promise<unknown>;

  constructor(private readonly dir: string, options: BundleLoaderOptions = {}) {
    this.nodeRequire = createRequire(join(dir, 'main.js'));
    const importModule = options.importModule ?? ((specifier: string) => import(specifier));
    // a relative specifier is relative to the chunks' directory, where the module that named it was
    this.importModule = (specifier) => importModule(specifier.startsWith('.') ? pathToFileURL(join(dir, specifier)).href : specifier);
    if (options.writeCache) process.once('exit', () => this.saveCaches());
  }

  /** Runs a chunk (and, through its require calls, the chunks it needs) once; its exports. */
  load(path: string): unknown {
    const known = this.modules.get(path);
    if (known) return known.exports;
    const bytes = readFileSync(path);
    const module: ChunkModule = { exports: {}, id: path, filename: path, loaded: false };
    this.modules.set(path, module); // before it runs: a cycle gets the partial exports, as in node
    const wrapper = this.compile(path, bytes) as (exports: unknown, require: NodeJS.Require, module: ChunkModule, filename: string, dirname: string, importModule: (specifier: string) => Promise<unknown>) => void;
    wrapper.call(module.exports, module.exports, this.requireFor(), module, path, dirname(path), this.importModule);
    module.loaded = true;
    return module.exports;
  }

  private compile(path: string, bytes: Buffer): unknown {
    const cachedData = readCache(path + CACHE_SUFFIX, bytes);
    const script = new Script(wrapCommonJs(stripHashbang(decode(bytes))), { filename: path, cachedData: cachedData ?? undefined });
    this.outcomes.set(basename(path), cachedData === undefined ? 'missing' : cachedData === null ? 'invalid' : script.cachedDataRejected ? 'rejected' : 'used');
    this.scripts.set(path, { script, bytes });
    return script.runInThisContext();
  }

  private requireFor(): NodeJS.Require {
    const nodeRequire = this.nodeRequire;
    // The chunks require one another ~35 times in an append; path.join normalised each path, which made
    // node's path normalizeString hot enough for TurboFan (~17M instructions, 2.5 % of an append; issue
    // 16). CHUNK_SPECIFIER is './name.cjs' with no other slash, so the path is the directory and the name.
    const chunkDir = this.dir.endsWith(sep) ? this.dir : this.dir + sep;
    const require = ((id: string) => (CHUNK_SPECIFIER.test(id) ? this.load(chunkDir + id.slice(2)) : nodeRequire(id))) as NodeJS.Require;
    require.resolve = nodeRequire.resolve;
    require.cache = nodeRequire.cache;
    return require;
  }

  /** After the chunks ran: their caches then hold the functions that ran too, not only the top level. */
  saveCaches(): void {
    for (const [path, { script, bytes }] of this.scripts) writeCache(path + CACHE_SUFFIX, bytes, script.createCachedData());
  }
}

/**
 * Runs the bundled CLI in `dir` (dist/src/cli/) if the bundle there is current, that is main.js is
 * still the shim the bundle step wrote (MAIN_SHIM): false when it is not (a plain `tsc` ran since,
 * so the chunks may be stale, or there never was a bundle), and the caller runs main.js instead.
 * For the CommonJS bin (main.cts), which the bundle step gives this loader as CommonJS too.
 */
export function runBundleIfCurrent(dir: string): boolean {
  let entry: string;
  try {
    entry = readFileSync(join(dir, 'main.js'), 'latin1');
  } catch {
    return false; // no main.js: the caller's import of it says what is wrong
  }
  if (entry !== MAIN_SHIM) return false;
  new BundleLoader(dir, { importModule: (specifier) => import(specifier) }).load(join(dir, MAIN_CHUNK));
  return true;
}

/**
 * The cache data for `source` (a chunk's bytes as read: its checksum is taken over them, not over a
 * string made from them, which would be encoded to UTF-8 again), undefined when there is no cache
 * file, null when there is one that does not belong to this source or is damaged.
 */
export function readCache(cachePath: string, source: Buffer): Buffer | null | undefined {
  let bytes: Buffer;
  try {
    bytes = readFileSync(cachePath);
  } catch {
    return undefined; // no cache (or unreadable): compile as usual
  }
  if (bytes.length <= HEADER_BYTES || !bytes.subarray(0, 4).equals(MAGIC)) return null;
  if (bytes.readUInt32BE(4) !== crc32(source)) return null;
  const data = bytes.subarray(HEADER_BYTES);
  return bytes.readUInt32BE(8) === crc32(data) ? data : null;
}

/** Written whole under a temporary name and renamed: a reader sees the old cache, the new one or none. */
export function writeCache(cachePath: string, source: Buffer, data: Buffer): void {
  const header = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(header, 0);
  header.writeUInt32BE(crc32(source), 4);
  header.writeUInt32BE(crc32(data), 8);
  const temporary = `${cachePath}.${process.pid}.tmp`;
  try {
    writeFileSync(temporary, Buffer.concat([header, data]));
    renameSync(temporary, cachePath);
  } catch {
    // a read-only install or a full disk: the CLI runs without this cache
    try { unlinkSync(temporary); } catch { /* never written */ }
  }
}

/**
 * node's CommonJS wrapper (a chunk sees exports, require, module, __filename and __dirname), strict as
 * the ES modules the chunks were made from, and with the loader's import().
 */
function wrapCommonJs(source: string): string {
  return `(function (exports, require, module, __filename, __dirname, ${IMPORT_FUNCTION}) { 'use strict'; ${source}\n})`;
}

/**
 * The chunk's text. The build escapes every non-ASCII character (rolldown's charset 'ascii'), so a
 * chunk is copied into a one-byte string instead of going through the UTF-8 decoder, which was
 * ~4 % of an append's instructions (issue 16). A chunk with other bytes is decoded as UTF-8.
 */
function decode(bytes: Buffer): string {
  return isAscii(bytes) ? bytes.toString('latin1') : bytes.toString('utf8');
}

/** A '#!' line is valid only at the very start of a script, and the wrapper comes first. */
function stripHashbang(source: string): string {
  return source.startsWith('#!') ? `//${source.slice(2)}` : source;
}
