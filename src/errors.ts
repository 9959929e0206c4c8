// One error class for everything the world can do to us. Codes are stable (scripts and the CLI's
// exit codes depend on them); messages may improve. Bugs are asserts, not MailstoreErrors.

export const ERROR_CODES = {
  NOT_FOUND: 'no such mailbox, message or blob',
  EXISTS: 'the mailbox or store already exists',
  INVALID: 'bad input: a name, UID set, flag, option or file the caller gave, or a store directory on a file system that cannot hold one (names that ignore case)',
  CORRUPT: 'bytes on disk fail their checksum or hash; nothing wrong was returned',
  NO_SPACE: 'the disk is full (ENOSPC/EDQUOT); nothing of the failed operation was kept',
  ACCESS: 'the operating system refused access (EACCES/EPERM/EROFS) to a path, or a path is on a file system where fsync does nothing (overlayfs mounted volatile) and is not written',
  IO: 'the operating system reported an I/O error (EIO)',
  UNMOUNTED: 'the store does not look like itself: STORE identity missing or foreign, packs or journal gone, device changed',
  LOCKED: 'another process holds the store',
  TOO_LARGE: 'the message is larger than the configured limit',
  OVER_QUOTA: 'the mailbox\'s quota root would go over its storage or message quota (temporary: the owner can make room), or the mailbox gave out its last UID (4294967295)',
  CLOSED: 'the store is closed or was stopped after a failure it could not undo; reopen it',
  REFUSED: 'a tool refused to change a store that looks damaged or missing (override flag named in the message)',
  HALTED: 'the store stopped itself because one of its own invariants failed (a bug); nothing of the batch was written; reopen it and report the message',
  READ_ONLY_REPLICA: 'the store is a replica (or a primary fenced by a newer epoch): it serves reads, writes go to the primary',
  MOVED: 'the mailbox\'s user was moved to another server by xfer (the host is named): temporary for xferMovedTempfailMs after the move (by the wall clock and as long seen by this process), so mail waits in the MTA\'s queue until its routing names the new host; permanent after that (error.moved.permanent)',
  UNAVAILABLE: 'temporary: the daemon could not be reached, went away or did not answer in time, or holds as many listings waiting for their readers as it allows, or too few synchronous replicas are connected (refused before anything was written), or a replica did not confirm in time, or a read was under way when the store closed or its index was swapped, or a call in parts (a big expunge, flag change, copy or move) was stopped between two parts as the store closed (its message says what was done); error.mayHaveCommitted says whether a change in flight may have been made',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface MovedTo {
  user: string;
  to: string;
  permanent: boolean;
}

export class MailstoreError extends Error {
  readonly code: ErrorCode;
  /** The file path, index key or mailbox the error is about, when there is one. */
  readonly path?: string;
  override readonly cause?: unknown;
  /**
   * UNAVAILABLE only (the client library): true when a change was in flight as the daemon went away
   * or the call timed out, so it may have been committed (look before retrying: an append retried
   * stores the same bytes once more, under a new uid, without a new blob); false when it cannot have been.
   */
  readonly mayHaveCommitted?: boolean;
  /**
   * NO_SPACE only: refused for the store's free-space reserve (src/store/free-space.ts), the disk is
   * not full; the store said so once (StoreOptions.onFreeSpace), so servers need not warn per call.
   */
  belowReserve?: true;
  /** MOVED only: the user, the host it went to, and whether the temporary window (limits.xferMovedTempfailMs) is over. */
  readonly moved?: MovedTo;

  constructor(code: ErrorCode, message: string, options: { path?: string; cause?: unknown; mayHaveCommitted?: boolean; moved?: MovedTo } = {}) {
    super(message);
    this.name = 'MailstoreError';
    this.code = code;
    this.path = options.path;
    this.cause = options.cause;
    if (options.mayHaveCommitted !== undefined) this.mayHaveCommitted = options.mayHaveCommitted;
    if (options.moved !== undefined) this.moved = options.moved;
  }

  /**
   * `instanceof` across copies of this module: the CLI bundle has its own, and a command loaded
   * outside it (bench, an ES module) throws errors of tsc's copy, which the bundle's error report
   * must still see as MailstoreErrors (not INTERNAL). Every copy brands its instances alike.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}
/** Set on every MailstoreError by every copy of this module (Symbol.for: one symbol per process). */
const BRAND = Symbol.for('mailstore.MailstoreError');
Object.defineProperty(MailstoreError.prototype, BRAND, { value: true });

export function isMailstoreError(error: unknown, code?: ErrorCode): error is MailstoreError {
  return error instanceof MailstoreError && (code === undefined || error.code === code);
}

const SYSTEM_CODES: Record<string, ErrorCode> = {
  ENOSPC: 'NO_SPACE',
  EDQUOT: 'NO_SPACE',
  EFBIG: 'NO_SPACE',
  EACCES: 'ACCESS',
  EPERM: 'ACCESS',
  EROFS: 'ACCESS',
  EIO: 'IO',
  ENOENT: 'NOT_FOUND',
  EEXIST: 'EXISTS',
};

/** Turns a node:fs error into a MailstoreError with a code a caller can act on; `outcome`: what became of the operation. */
export function fromSystemError(error: unknown, doing: string, path: string, outcome = 'nothing of this operation was acknowledged'): MailstoreError {
  if (error instanceof MailstoreError) return error;
  if (error instanceof AssertionFailure) throw error; // a bug is never dressed up as the world's error
  const sys = (error as NodeJS.ErrnoException | undefined)?.code ?? '';
  const code = SYSTEM_CODES[sys] ?? 'IO';
  // a disk out of inodes or a user over quota says ENOSPC or EDQUOT with gigabytes free: say what to free
  const advice =
    sys === 'EDQUOT' ? ` (the disk quota of the user the store runs as is used up: raise it or free space, and retry; ${outcome})` :
    sys === 'EFBIG' ? ` (the file would pass the process's file size limit: raise 'ulimit -f' or systemd's LimitFSIZE= for mailstore, and retry; ${outcome})` :
    code === 'NO_SPACE' ? ` (free space or inodes ('df -i') and retry; ${outcome})` :
    sys === 'EROFS' ? ' (Read-only file system: it is on read-only media or a file system mounted or remounted read-only; reads work, changes need it writable)' :
    code === 'ACCESS' ? ' (check ownership, mode and read-only mounts)' : '';
  return new MailstoreError(code, `${doing} ${path}: ${sys || String(error)}${advice}`, { path, cause: error });
}

/**
 * A bug: one of mailstore's own invariants does not hold. Never a caller's error and never mapped
 * to a MailstoreError code on the way out; the writer stops the store when it meets one (HALTED).
 */
export class AssertionFailure extends Error {
  constructor(message: string) {
    super(`assertion failed: ${message}`);
    this.name = 'AssertionFailure';
  }
}

/** A system error saying the process (EMFILE) or the system (ENFILE) has no descriptor left: caches can let theirs go and retry. */
export function isOutOfDescriptors(error: unknown): boolean {
  return ['EMFILE', 'ENFILE'].includes((error as NodeJS.ErrnoException | undefined)?.code ?? '');
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionFailure(message);
}
