// `npm run build` runs this after tsc: it bundles the CLI (dist/src/cli/main.js and what it imports)
// into a few chunks beside it, because node 20's ESM loader spends most of a short command's time
// resolving and compiling ~50 separate modules (docs/bench/cli-start-profile.md, issue 16). The
// bundle's entry replaces dist/src/cli/main.js, so the `mailstore` bin runs it; a later plain `tsc`
// writes main.js again and the CLI runs unbundled from the fresh modules (never a stale bundle).
// Commands still load their code on use: each dynamic import() becomes its own chunk.
// Packages with native parts or heavy optional ones stay outside the bundle and load from
// node_modules as before. Without rolldown (it comes with vitest's vite) the CLI stays unbundled.
import { mkdir, readdir, rename, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI_DIR = fileURLToPath(new URL('../src/cli/', import.meta.url));
/** Written here first and moved beside main.js only when complete, main.js last. */
const STAGING_DIR = fileURLToPath(new URL('../.cli-bundle/', import.meta.url));
const ENTRY = join(CLI_DIR, 'main.js');
/** Chunk names start with this, so the next build can remove the previous build's chunks. */
const CHUNK_PREFIX = 'bundle-';
/** Loaded from node_modules: native bindings (found relative to their own files), or big and rarely used. */
const EXTERNAL = [/^@napi-rs\//, /^cbor-extract/, /^hash-wasm/, /^minio/, /^smtp-server/, /^nodemailer/, /^vega/, /^vega-lite/, /^node:/];

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

interface Rolldown {
  build(options: unknown): Promise<unknown>;
}

async function loadRolldown(): Promise<Rolldown | undefined> {
  const name = 'rolldown'; // not a declared type dependency: tsc must not need it
  return (await import(name).catch(() => undefined)) as Rolldown | undefined;
}

async function removeOldChunks(): Promise<void> {
  for (const name of await readdir(CLI_DIR)) {
    if (name.startsWith(CHUNK_PREFIX) && name.endsWith('.js')) await unlink(join(CLI_DIR, name));
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
  } catch (error) {
    // a bundle is only faster, never needed: say why and keep tsc's entry
    process.stderr.write(`bundle-cli: bundling failed, the CLI runs unbundled: ${error instanceof Error ? error.message : String(error)}\n`);
    await rm(STAGING_DIR, { recursive: true, force: true });
    return;
  }
  await removeOldChunks();
  const written = await readdir(STAGING_DIR);
  for (const name of written.filter((n) => n !== 'main.js')) await rename(join(STAGING_DIR, name), join(CLI_DIR, name));
  await rename(join(STAGING_DIR, 'main.js'), ENTRY);
  await rm(STAGING_DIR, { recursive: true, force: true });
}

function build(rolldown: Rolldown): Promise<unknown> {
  return rolldown.build({
    input: ENTRY,
    platform: 'node',
    external: EXTERNAL,
    plugins: [levelBinding],
    logLevel: 'warn',
    output: {
      dir: STAGING_DIR,
      format: 'esm',
      entryFileNames: 'main.js', // the bin: replaces tsc's main.js
      chunkFileNames: `${CHUNK_PREFIX}[name]-[hash].js`,
      sourcemap: false,
    },
  });
}

await bundle();
