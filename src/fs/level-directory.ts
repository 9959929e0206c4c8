// LevelDB makes its own directory, with the mode node's mkdir gives (0777 less the umask): under
// umask 000 a store's index/ and lock/ were 0777 (their files 0666) inside a root a package made
// 0755, so every local user could rewrite the index or the lock. The store's own directories are
// 0750 whatever the umask (node-fs.ts); LevelDB's are made the same way here, before it opens them.
// Like the rest of LevelDB's I/O this bypasses the FileSystem interface: it is node:fs here.
import { promises as fsp } from 'node:fs';

/**
 * Creates `path` 0750 when missing. Any failure is left to LevelDB's own open, which reports it
 * (ACCESS, NO_SPACE, IO) the way every open does; an existing directory keeps its mode.
 */
export async function makeLevelDirectory(path: string): Promise<void> {
  await fsp.mkdir(path, { mode: 0o750 }).catch(() => undefined);
}
