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
  /** Stopped by Ctrl-C (SIGINT), SIGTERM or SIGHUP at a safe point; main then ends the process by that signal (interrupt.ts). */
  interrupted: 130,
  /** stdout's reader went away (`| head`) before the command said all it had to: 128 + SIGPIPE, as a shell reports any writer killed by it. */
  brokenPipe: 141,
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
  MOVED: EXIT.notFound, // not here: the message names the host XFER moved the user to
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
    `       replica check); compact left a damaged pack alone; import skipped entries (listed; the rest is in);`,
    `       backup repair left records it could not verify or blobs to heal; rebuild-from-bucket rebuilt the`,
    `       store without some messages (listed); export to a Maildir left out keywords past 26 (listed);`,
    `       snapshot wrote its snapshot but retired nothing: a consumer cursor or JOURNAL-ARCHIVE is damaged`,
    `  2    could not run (${codesFor(EXIT.couldNotRun)})`,
    `  3    refused (${codesFor(EXIT.refused)})`,
    `  4    not found (${codesFor(EXIT.notFound)})`,
    `  5    invalid input (${codesFor(EXIT.invalid)}; also a bad command line)`,
    `  6    corruption (${codesFor(EXIT.corruption)}): nothing wrong was printed`,
    `  70   internal error (${codesFor(EXIT.internal)}, or any error without a code: a bug; please report it)`,
    `  75   skipped: nothing was done, nothing failed (scrub --through-daemon with no daemon serving the store)`,
    `  130  stopped by Ctrl-C (143: SIGTERM, 129: SIGHUP); import and export at a safe point, everything`,
    `       reported durable, then ended by the signal itself, so a script running them stops too`,
    `  141  stdout's reader went away (| head) before all was written: output cut short, nothing else`,
    '',
    'Errors print one line to stderr: "mailstore: CODE: message". With --json (or --jsonl), and',
    'nothing printed before, also one on stdout: {"error":{"code","message","path"?,"exitCode"}}.',
  ].join('\n');
}
