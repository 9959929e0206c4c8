// The few file chores of the benchmark (directories, whole small files, a tree removed), through
// the one FileSystem door like the rest of mailstore. None of it is store data: no fsync needed
// except where a resume point depends on it (corpus.ts syncs those itself).
import { spawnSync } from 'node:child_process';
import { dirname } from 'node:path';
import type { FileSystem } from '../fs/filesystem.js';
import { nodeFileSystem } from '../fs/node-fs.js';

/** mkdir -p. */
export async function makeDirectories(path: string, fs: FileSystem = nodeFileSystem): Promise<void> {
  if (await fs.statIfExists(path)) return;
  const parent = dirname(path);
  if (parent !== path) await makeDirectories(parent, fs);
  await fs.mkdir(path).catch(async (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST' || !(await fs.statIfExists(path))?.isDirectory) throw error;
  });
}

/** Replaces a file's content (a report, raw JSON, a chart). */
export async function writeText(path: string, text: string | Buffer, fs: FileSystem = nodeFileSystem): Promise<void> {
  await makeDirectories(dirname(path), fs);
  const handle = await fs.open(path, 'createOrOpen');
  try {
    const data = typeof text === 'string' ? Buffer.from(text) : text;
    await handle.truncate(0);
    await handle.write(data, 0);
  } finally {
    await handle.close();
  }
}

export async function readText(path: string, fs: FileSystem = nodeFileSystem): Promise<string | undefined> {
  if (!(await fs.statIfExists(path))) return undefined;
  return (await fs.readFile(path)).toString('utf8');
}

export async function exists(path: string, fs: FileSystem = nodeFileSystem): Promise<boolean> {
  return (await fs.statIfExists(path)) !== undefined;
}

/** rm -rf of something the benchmark made (a store, a work directory). */
export async function removeTree(path: string, fs: FileSystem = nodeFileSystem): Promise<void> {
  if (await fs.lstatIfExists(path)) await fs.removeTree(path);
}

/**
 * Reads every file below `dir` once (`find | xargs cat`), so that a measurement that says "warm
 * page cache" starts warm: this machine's kernel runs DAMON reclaim, which pages out what was not
 * touched for about a minute (tools/bench/README.md, "The page cache here"), so a store written a
 * few steps earlier is partly read from disk again.
 */
export async function warmPageCache(dir: string): Promise<void> {
  const ran = spawnSync('sh', ['-c', 'find "$1" -type f -print0 | xargs -0 cat > /dev/null', 'warm', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  if (ran.status !== 0) throw new Error(`reading ${dir} to warm the page cache failed: ${ran.stderr?.toString().trim()}`);
}
