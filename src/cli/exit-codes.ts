// One table from error code to process exit code, so every command (and scrub, which adds
// "findings") exits the same way for the same trouble, and scripts can rely on it.
import { isMailstoreError, type ErrorCode } from '../errors.js';

export const EXIT = {
  ok: 0,
  /** A check found damage (scrub); an import finished but skipped entries it could not take in. */
  findings: 1,
  /** The command could not run: the store is locked, the disk is full, access or I/O failed. */
  couldNotRun: 2,
  /** Refused: the store looks unmounted or damaged, or a guard needs an override flag. */
  refused: 3,
  notFound: 4,
  /** Bad input: a name, UID set, flag, option, file, or something that already exists. */
  invalid: 5,
  corruption: 6,
  /** A bug in mailstore (an assertion failed); the message says what. */
  internal: 70,
  /**
   * Nothing was done, by design, and nothing failed: `scrub --through-daemon` with no daemon serving
   * the store. sysexits' EX_TEMPFAIL: the next run tries again.
   */
  skipped: 75,
  /** Stopped by Ctrl-C (SIGINT) at a safe point. */
  interrupted: 130,
} as const;

const BY_CODE: Record<ErrorCode, number> = {
  LOCKED: EXIT.couldNotRun,
  ACCESS: EXIT.couldNotRun,
  IO: EXIT.couldNotRun,
  NO_SPACE: EXIT.couldNotRun,
  CLOSED: EXIT.couldNotRun,
  UNAVAILABLE: EXIT.couldNotRun, // the daemon went away: temporary
  OVER_QUOTA: EXIT.couldNotRun, // temporary, as Cyrus's LMTP 452: the user may expunge and the MTA retry
  UNMOUNTED: EXIT.refused,
  REFUSED: EXIT.refused,
  NOT_FOUND: EXIT.notFound,
  INVALID: EXIT.invalid,
  TOO_LARGE: EXIT.invalid,
  EXISTS: EXIT.invalid,
  CORRUPT: EXIT.corruption,
  HALTED: EXIT.internal,
  READ_ONLY_REPLICA: EXIT.refused,
};

export function exitCodeForCode(code: ErrorCode): number {
  return BY_CODE[code] ?? EXIT.internal; // a code outside the table (a bug) must never exit 0
}

/** The exit code for anything a command threw: a MailstoreError by its code, anything else is a bug. */
export function exitCodeFor(error: unknown): number {
  return isMailstoreError(error) ? exitCodeForCode(error.code) : EXIT.internal;
}

/** The same table for `--help` and the README. */
export function exitCodesHelp(): string {
  const codesFor = (exit: number) => (Object.keys(BY_CODE) as ErrorCode[]).filter((c) => BY_CODE[c] === exit).join(', ');
  return [
    'Exit codes:',
    `  0    ok`,
    `  1    findings: a check found damage or differences (scrub, backup check, reconstruct --check,`,
    `       replica check); compact left a damaged pack alone; import skipped entries (listed; the rest is in)`,
    `  2    could not run (${codesFor(EXIT.couldNotRun)})`,
    `  3    refused (${codesFor(EXIT.refused)})`,
    `  4    not found (${codesFor(EXIT.notFound)})`,
    `  5    invalid input (${codesFor(EXIT.invalid)}; also a bad command line)`,
    `  6    corruption (${codesFor(EXIT.corruption)}): nothing wrong was printed`,
    `  70   internal error (${codesFor(EXIT.internal)}, or any error without a code: a bug; please report it)`,
    `  75   skipped: nothing was done, nothing failed (scrub --through-daemon with no daemon serving the store)`,
    `  130  interrupted by Ctrl-C at a safe point (everything reported is durable)`,
    '',
    'Errors print one line to stderr: "mailstore: CODE: message". With --json (or --jsonl), and',
    'nothing printed before, also one on stdout: {"error":{"code","message","path"?,"exitCode"}}.',
  ].join('\n');
}
