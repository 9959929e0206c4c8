// Every command starts a stall watch (stall-watch.ts) once it has run limits.cliStallWatchDelayMs:
// one that ends sooner never needs it. The watch's module (its worker's source and the syscall
// tables) is loaded only then, so a short command such as an `append` does not load it either
// (issue 16's start-up budget, test/cli/start-up.test.ts). The report time is read from the
// environment at once, so a wrong MAILSTORE_STALL_REPORT_SECONDS fails every command at its start.
import { MailstoreError } from '../errors.js';
import { limits } from '../limits.js';
import type { StallWatchOptions } from './stall-watch.js';

/** MAILSTORE_STALL_REPORT_SECONDS (an NFS mount whose calls take 20 s in normal use): 0 turns the report off. */
export const STALL_REPORT_ENV = 'MAILSTORE_STALL_REPORT_SECONDS';

/** The report time: MAILSTORE_STALL_REPORT_SECONDS, else limits.stallReportMs; 0: no watch. */
export function stallReportMs(env: NodeJS.ProcessEnv = process.env): number {
  const text = env[STALL_REPORT_ENV];
  if (text === undefined || text === '') return limits.stallReportMs;
  const seconds = Number(text);
  if (!/^[0-9]+(\.[0-9]+)?$/.test(text) || seconds > 86_400) throw new MailstoreError('INVALID', `${STALL_REPORT_ENV} takes seconds (0 to 86400; 0: no report), got ${JSON.stringify(text)}`);
  return Math.round(seconds * 1000);
}

/**
 * Starts a watch after `delayMs` unless one runs by then (a command that ends sooner never pays for
 * a worker thread, nor loads its module); returns the function that cancels it, or stops the watch
 * it started. The timer runs while the command's first look at the store waits in the thread pool
 * (context.ts), so a store that hangs from the start is still reported.
 */
export function startStallWatchAfter(delayMs: number, options: StallWatchOptions): () => void {
  if (options.reportMs === 0) return () => undefined; // MAILSTORE_STALL_REPORT_SECONDS=0: no watch, nothing loaded
  let cancelled = false;
  let stop: (() => Promise<void>) | undefined;
  const timer = setTimeout(() => {
    void import('./stall-watch.js').then((watch) => {
      if (cancelled) return;
      const started = watch.startStallWatchIfNone(options);
      if (started) stop = () => started.stop();
    }, () => undefined); // a watch that cannot load leaves the command as it was, unwatched
  }, delayMs).unref();
  return () => {
    cancelled = true;
    clearTimeout(timer);
    void stop?.();
  };
}
