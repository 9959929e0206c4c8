// Whether stderr (or stdout) is a terminal, asked without making node's stream for it: process.stderr
// on a pipe (an MTA, cron, the bench) is a net.Socket, and reading its isTTY loaded node's net and
// stream modules in every backup (issue 16; std-streams.ts). node:tty requires net too, so it is
// loaded only for a character device, which every terminal is.
import { createRequire } from 'node:module';
import { fstatSync } from 'node:fs';

const require = createRequire(import.meta.url);

/** True when `fd` is a terminal; false for a pipe, a file, /dev/null or a closed descriptor. */
export function isTerminal(fd: number): boolean {
  try {
    if (!fstatSync(fd).isCharacterDevice()) return false;
  } catch {
    return false; // closed (EBADF): nothing to draw on
  }
  return (require('node:tty') as typeof import('node:tty')).isatty(fd);
}
