// LevelDB is classic-level, whose native binary loads when its module is first evaluated. It is
// loaded here when a store first opens its index or lock, not when a command's module is: a binary
// that does not load (node upgraded without `npm rebuild`, node_modules copied from another machine
// or libc) failed every command, --version and `backup check` too, at start-up as a bug (exit 70).
import type { Level } from 'level';
import { MailstoreError } from '../errors.js';

let loading: Promise<typeof Level> | undefined;

/** classic-level's Level class, or IO naming what to reinstall when its binary does not load here. */
export function levelClass(): Promise<typeof Level> {
  loading ??= import('level').then((module) => module.Level, (error: unknown) => {
    loading = undefined; // a later open tries again (a rebuild meanwhile)
    const why = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new MailstoreError('IO', `LevelDB's native module (classic-level) does not load in node ${process.version} on ${process.platform}-${process.arch}: ${why}; reinstall it for this node: 'npm rebuild classic-level' where mailstore is installed, or install mailstore again`, { cause: error });
  });
  return loading;
}
