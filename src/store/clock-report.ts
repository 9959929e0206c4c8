// What the store makes of the system clock for retention and `mailstore clock` (clock.ts keeps the
// reference; this part loads only when asked): why a clock cannot be trusted, and the refusal.
import { MailstoreError } from '../errors.js';
import { limits } from '../limits.js';
import type { ClockState, ClockStep } from './clock.js';

/** What `mailstore clock` shows, and retention asks before it deletes anything. */
export interface ClockReport {
  now: number;
  seen: number;
  created: number;
  steps: ClockStep[];
  /** Why retention refuses to run now; absent when the clock can be trusted. */
  untrusted?: string;
}

export function clockReport(state: ClockState, created: number, now: number): ClockReport {
  const report: ClockReport = { now, seen: state.seen, created, steps: state.steps };
  const untrusted = whyUntrusted(state, created, now);
  return untrusted === undefined ? report : { ...report, untrusted };
}

/**
 * The report as a caller in another process sees it (a CLI through the daemon): a cutoff counted
 * from this process's clock is no better than that clock, which must agree with the store's.
 */
export function judgedHere(report: ClockReport, now = Date.now()): ClockReport {
  if (report.untrusted !== undefined || Math.abs(now - report.now) <= limits.clockStepMs) return report;
  const at = (ms: number) => new Date(ms).toISOString();
  return { ...report, untrusted: `this process's clock (${at(now)}) is ${describeMs(Math.abs(now - report.now))} from the store's process's (${at(report.now)})` };
}

function whyUntrusted(state: ClockState, created: number, now: number): string | undefined {
  const at = (ms: number) => new Date(ms).toISOString();
  // a store created under a clock that was ahead: once the admin said the clock is right, only what it saw since counts
  if (state.trusted === undefined && now < created - limits.clockStepMs) return `the system clock (${at(now)}) is before this store was created (${at(created)})`;
  if (now < state.seen - limits.clockStepMs) return `the system clock (${at(now)}) is behind the latest time this store has seen (${at(state.seen)}): it went back, or was ahead then`;
  if (state.steps.length === 0) return undefined;
  const shown = state.steps.map((step) => `${step.byMs > 0 ? 'forward' : 'back'} by ${describeMs(Math.abs(step.byMs))} at about ${at(step.atMs)}`);
  return `the system clock was stepped ${shown.join(', then ')} (NTP putting a wrong clock right, a VM restored from a snapshot, date -s): either the clock is wrong now, or the dates it gave before were`;
}

/** REFUSED for a retention run under a clock the store cannot trust; nothing was expunged. */
export function untrustedClockError(report: ClockReport, mailbox: string): MailstoreError {
  return new MailstoreError('REFUSED', `retention deletes by the clock, and ${report.untrusted}; nothing was expunged. Set the clock right (timedatectl, chronyc tracking), check that messages delivered meanwhile are dated as they should be ('mailstore messages'), then run 'mailstore clock trust' and run this again`, { path: mailbox });
}

function describeMs(ms: number): string {
  const units: [number, string][] = [[86_400_000, 'days'], [3_600_000, 'hours'], [60_000, 'minutes']];
  for (const [size, name] of units) if (ms >= 2 * size) return `${Math.round(ms / size)} ${name}`;
  return `${Math.round(ms / 1000)} seconds`;
}

