// Ctrl-C during long work stops at a safe point instead of mid-write: the first SIGINT sets a
// flag the work loop checks between batches; a second one exits at once (the store is
// crash-safe, so even that loses nothing acknowledged, only the summary).
import { EXIT } from './exit-codes.js';

export interface Interrupt {
  readonly requested: boolean;
  dispose(): void;
}

// SIGTERM too (kill, a service manager, a container stopping): it killed an import before it
// printed its summary and left an export's temp file beside --out (found session 30). SIGHUP: the
// terminal closed or the ssh connection dropped, with the output perhaps going to a log file.
const SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Set to 1 by the package's /usr/bin/mailstore when it was started with SIGHUP ignored (`nohup
 * mailstore import ... &`): node resets every signal to its default at start-up, so it cannot see
 * that itself, and the import stopped at logout. SIGHUP is then ignored (main) and stops nothing.
 */
export const SIGHUP_IGNORED_ENV = 'MAILSTORE_SIGHUP_IGNORED';

export function sighupIgnored(): boolean {
  return process.env[SIGHUP_IGNORED_ENV] === '1';
}

/** The signal that stopped the command (the first one caught), for main to end the process by. */
let stoppedBy: NodeJS.Signals | undefined;

/** `signals`: those that stop the work at its safe point (the others keep their default: they kill). */
export function catchInterrupt(what: string, stopSignals: readonly NodeJS.Signals[] = SIGNALS): Interrupt {
  const signals = sighupIgnored() ? stopSignals.filter((signal) => signal !== 'SIGHUP') : stopSignals;
  let requested = false;
  const handler = (signal: NodeJS.Signals) => {
    if (requested) {
      process.stderr.write('\nmailstore: stopped at once\n');
      endBySignal(signal);
    }
    requested = true;
    stoppedBy = signal;
    process.stderr.write(`\nmailstore: stopping ${what} at the next safe point (Ctrl-C or SIGTERM again to stop at once)\n`);
  };
  for (const signal of signals) process.on(signal, handler);
  return {
    get requested() { return requested; },
    dispose() {
      for (const signal of signals) process.off(signal, handler);
    },
  };
}

/**
 * Thrown while the command waits for a store another process holds, once Ctrl-C (SIGTERM, SIGHUP)
 * came: there is no safe point to wait for, nothing has been done. It waited on up to --wait
 * (30 s by default) and then began its work (an import made its mailbox, imported a message).
 */
export class StoppedWaiting extends Error {
  constructor() {
    super('stopped while waiting for the store: nothing was done');
  }
}

/** Throws StoppedWaiting once a signal asked the command to stop (called on each retry of a lock wait). */
export function stopWaitingIfInterrupted(): void {
  if (stoppedBy !== undefined) throw new StoppedWaiting();
}

/** The signal a command stopped for, once it has stopped early (its exit code EXIT.interrupted). */
export function interruptSignal(): NodeJS.Signals | undefined {
  return stoppedBy;
}

/**
 * Ends the process by `signal`, as if it had not been caught: its parent sees what the signal did,
 * not an exit. bash stops a script only when the command it waited for died of SIGINT, so an import
 * that exited 130 after its summary let the script go on to its next line. The shell reports it
 * as 128 + the signal's number (130, 143, 129).
 */
export function endBySignal(signal: NodeJS.Signals): never {
  for (const each of SIGNALS) process.removeAllListeners(each); // the default action again: terminate
  process.kill(process.pid, signal);
  process.exit(EXIT.interrupted); // not reached: a signal to the process itself is delivered before kill returns
}
