// sysexits.h codes for an MTA's delivery command (Postfix mailbox_command, procmail-style): a
// temporary failure must be 75 (EX_TEMPFAIL) so the MTA queues and retries instead of bouncing.
// Used by `append --sysexits` or MAILSTORE_SYSEXITS=1; every other command keeps exit-codes.ts.
//
// Only what is wrong with the message or its recipient is permanent (65, 66, 67): Postfix turns
// every other sysexits code but 71 and 75 into a bounce (its sys_exits table: 74 "5.3.0", 77
// "5.7.0", 78 "5.3.5"), and a store that is unmounted, has lost its permissions, is damaged or
// is missing altogether is the server's trouble, fixed by its admin, after which the queued mail
// goes in. Until session 30, ACCESS (77), UNMOUNTED and REFUSED (78), CORRUPT (74) and a bug (70)
// bounced the mail, and a missing store directory bounced as "user unknown" (67). As the LMTP
// server answers (src/daemon/lmtp.ts failureReply), and as Dovecot's LDA does for its own
// internal errors.
import { isMailstoreError, type ErrorCode } from '../errors.js';

export const SYSEXITS = {
  ok: 0,
  dataErr: 65, // EX_DATAERR: the message itself is unacceptable
  noInput: 66, // EX_NOINPUT: the message file cannot be read
  noUser: 67, // EX_NOUSER: no such mailbox
  tempFail: 75, // EX_TEMPFAIL: try again later
} as const;

/** What the store's append itself refused for good: the mailbox or the message. Anything else is temporary. */
const PERMANENT: Partial<Record<ErrorCode, number>> = {
  NOT_FOUND: SYSEXITS.noUser,
  INVALID: SYSEXITS.dataErr,
  TOO_LARGE: SYSEXITS.dataErr,
};

/**
 * Where a failed append was: reading and checking the message (its flags, date, size, the FILE),
 * opening the store (or reaching its daemon), or in the store's append call.
 */
export type AppendStage = 'message' | 'store' | 'append';

/**
 * The exit code of a failed `append --sysexits`. Only the message's own faults and the append
 * call's refusals can be permanent: a NOT_FOUND while opening the store is the store itself (its
 * directory gone with an unmounted disk), which must not bounce as "user unknown".
 */
export function sysexitFor(error: unknown, stage: AppendStage, file: string | undefined): number {
  if (!isMailstoreError(error)) return SYSEXITS.tempFail; // a bug: the mail waits for the fix
  if (stage === 'message') {
    if (file !== undefined && error.path === file) return SYSEXITS.noInput; // the message FILE cannot be read
    if (error.code === 'INVALID' || error.code === 'TOO_LARGE') return SYSEXITS.dataErr;
    return SYSEXITS.tempFail; // stdin that broke is the MTA's pipe: retry
  }
  if (stage === 'store') return SYSEXITS.tempFail;
  // a user XFER moved: queued until the MTA's routing names the new host, then bounced as moved
  if (error.code === 'MOVED') return error.moved?.permanent ? SYSEXITS.noUser : SYSEXITS.tempFail;
  return PERMANENT[error.code] ?? SYSEXITS.tempFail;
}

/**
 * append --sysexits, or MAILSTORE_SYSEXITS in the environment (for MTAs that cannot add flags): on
 * for any value but an empty one, 0, false, no or off. Only 1 was on before: MAILSTORE_SYSEXITS=true
 * exited 2 for a LOCKED during a daemon restart, and Postfix bounced the mail instead of queueing it.
 */
export function sysexitsWanted(flag: boolean | undefined): boolean {
  const value = (process.env.MAILSTORE_SYSEXITS ?? '').trim().toLowerCase();
  return Boolean(flag) || !['', '0', 'false', 'no', 'off'].includes(value);
}

export function sysexitsHelp(): string {
  return [
    'With --sysexits (or MAILSTORE_SYSEXITS=1), append exits with sysexits.h codes for an MTA:',
    '  67 EX_NOUSER    NOT_FOUND: no such mailbox, and no other under its parent (75 while user/NAME/... has',
    '                  some: an INBOX renamed away by an archive rotation; 75 when that cannot be read); MOVED past limits.xferMovedTempfailMs (5 days) after its XFER,',
    '                  as long seen by the daemon (without it, 75: the MTA bounces at its queue lifetime)',
    '  65 EX_DATAERR   INVALID, TOO_LARGE: the message, its flags or date are unacceptable',
    '  66 EX_NOINPUT   the message FILE cannot be read',
    '  75 EX_TEMPFAIL  everything else: the MTA keeps the message queued and retries (MOVED: the user went to',
    '                  another host by xfer, within 5 days; LOCKED, NO_SPACE,',
    '                  OVER_QUOTA, IO, ACCESS, UNMOUNTED, REFUSED, CORRUPT, CLOSED, HALTED, UNAVAILABLE,',
    '                  READ_ONLY_REPLICA, a missing store, a command line it cannot read, a bug)',
  ].join('\n');
}
