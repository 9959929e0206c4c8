// What a LevelDB failure means for the store. LevelDB reports an operating-system failure as
// "IO error: <path>: <strerror>" (env_posix.cc) and classic-level passes it on as LEVEL_IO_ERROR
// (LEVEL_LOCKED when the text starts "IO error: lock "): the errno itself is lost, so the strerror
// text is all there is. A full disk or a refused permission is not damage: rebuilding (which moves
// the index to quarantine and writes a new one) cannot help and must not happen for them.
import type { ErrorCode } from '../errors.js';

export type LevelFailure =
  /** Another process (or this one) holds the database's fcntl lock. */
  | { kind: 'locked'; text: string }
  /** The files are damaged or missing (Corruption, a lost CURRENT or MANIFEST): the rebuild path. */
  | { kind: 'damage'; text: string }
  /** The world refused (disk full, permissions, I/O error): report it, change nothing. */
  | { kind: 'system'; code: ErrorCode; text: string };

const STRERROR_CODES: [RegExp, ErrorCode | 'damage'][] = [
  [/No space left on device|Disk quota exceeded|File too large/i, 'NO_SPACE'],
  [/Permission denied|Operation not permitted|Read-only file system/i, 'ACCESS'],
  // A file LevelDB's own MANIFEST or CURRENT names is gone: damage, which the journal can rebuild.
  [/No such file or directory/i, 'damage'],
  // A table shorter than LevelDB expects (truncated): its read past the end says EINVAL. Damage.
  [/Invalid argument/i, 'damage'],
];

/** The messages and codes of an error and its causes, innermost last (classic-level wraps its errors). */
function causeChain(error: unknown): { text: string; codes: string[] } {
  const texts: string[] = [];
  const codes: string[] = [];
  for (let e = error as { message?: string; code?: string; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (typeof e.message === 'string') texts.push(e.message);
    else texts.push(String(e));
    if (typeof e.code === 'string') codes.push(e.code);
  }
  return { text: texts.join(': '), codes };
}

/** Sorts a LevelDB open (or probe) failure into locked, damage or an operating-system code. */
export function classifyLevelError(error: unknown): LevelFailure {
  const { text, codes } = causeChain(error);
  if (codes.includes('LEVEL_LOCKED') || /IO error: lock /.test(text)) return { kind: 'locked', text };
  if (codes.includes('LEVEL_CORRUPTION') || /Corruption:/.test(text)) return { kind: 'damage', text };
  if (codes.includes('LEVEL_IO_ERROR') || /IO error:/.test(text)) {
    for (const [pattern, code] of STRERROR_CODES) {
      if (pattern.test(text)) return code === 'damage' ? { kind: 'damage', text } : { kind: 'system', code, text };
    }
    return { kind: 'system', code: 'IO', text }; // EIO, EMFILE, ENOMEM...: the disk or the machine, not the files
  }
  return { kind: 'damage', text }; // "Invalid argument: ... does not exist (create_if_missing is false)" and the like
}

/** Advice for a person, by code, so every open path says the same thing. */
export function systemAdvice(code: ErrorCode): string {
  return code === 'NO_SPACE' ? ' (free space or inodes (\'df -i\'), or raise a disk quota the message names, and retry; nothing was changed)'
    : code === 'ACCESS' ? ' (check ownership, mode and read-only mounts; nothing was changed)'
    : ' (nothing was changed)';
}
