// sysexits.h codes for an MTA's delivery command (Postfix mailbox_command, procmail-style): a
// temporary failure must be 75 (EX_TEMPFAIL) so the MTA queues and retries instead of bouncing.
// Used by `append --sysexits` or MAILSTORE_SYSEXITS=1; every other command keeps exit-codes.ts.
import { isMailstoreError, type ErrorCode } from '../errors.js';

export const SYSEXITS = {
  ok: 0,
  dataErr: 65, // EX_DATAERR: the message itself is unacceptable
  noInput: 66, // EX_NOINPUT: the message file cannot be read
  noUser: 67, // EX_NOUSER: no such mailbox
  software: 70, // EX_SOFTWARE: a bug
  ioErr: 74, // EX_IOERR
  tempFail: 75, // EX_TEMPFAIL: try again later
  noPerm: 77, // EX_NOPERM
  config: 78, // EX_CONFIG: the store is not where or what it should be
} as const;

const BY_CODE: Record<ErrorCode, number> = {
  LOCKED: SYSEXITS.tempFail,
  NO_SPACE: SYSEXITS.tempFail,
  IO: SYSEXITS.tempFail,
  CLOSED: SYSEXITS.tempFail,
  UNAVAILABLE: SYSEXITS.tempFail, // the daemon went away, or too few synchronous replicas: an MTA retries (a retried delivery may store twice, as with any MTA)
  OVER_QUOTA: SYSEXITS.tempFail, // as Cyrus's LMTP 452 by default: the user can make room
  HALTED: SYSEXITS.tempFail, // the store stopped itself and wrote nothing; reopening may succeed
  NOT_FOUND: SYSEXITS.noUser,
  INVALID: SYSEXITS.dataErr,
  TOO_LARGE: SYSEXITS.dataErr,
  EXISTS: SYSEXITS.software,
  ACCESS: SYSEXITS.noPerm,
  UNMOUNTED: SYSEXITS.config,
  REFUSED: SYSEXITS.config,
  CORRUPT: SYSEXITS.ioErr,
  READ_ONLY_REPLICA: SYSEXITS.tempFail, // delivered to a replica: retry (at the primary)
};

export function sysexitFor(error: unknown): number {
  return isMailstoreError(error) ? BY_CODE[error.code] : SYSEXITS.software;
}

/** append --sysexits, or MAILSTORE_SYSEXITS=1 in the environment (for MTAs that cannot add flags). */
export function sysexitsWanted(flag: boolean | undefined): boolean {
  return Boolean(flag) || process.env.MAILSTORE_SYSEXITS === '1';
}

export function sysexitsHelp(): string {
  return [
    'With --sysexits (or MAILSTORE_SYSEXITS=1), append exits with sysexits.h codes for an MTA:',
    '  75 EX_TEMPFAIL  LOCKED, NO_SPACE, IO, CLOSED, OVER_QUOTA, HALTED, UNAVAILABLE, READ_ONLY_REPLICA: retry later',
    '  67 EX_NOUSER    NOT_FOUND: no such mailbox',
    '  66 EX_NOINPUT   the message FILE cannot be read',
    '  65 EX_DATAERR   INVALID, TOO_LARGE: the message or arguments are unacceptable',
    '  77 EX_NOPERM    ACCESS',
    '  78 EX_CONFIG    UNMOUNTED, REFUSED: the store is missing or not itself',
    '  74 EX_IOERR     CORRUPT',
    '  70 EX_SOFTWARE  anything else (a bug)',
  ].join('\n');
}
