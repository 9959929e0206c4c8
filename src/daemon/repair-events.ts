// scrub --repair as one listing: the scrub, then the repair of what it found, both where the store
// is (in the daemon when one serves it), their reports in pieces. Through the daemon the repair was
// a call of the whole report and an answer of the reports before and after: on a big store (648k
// unreferenced blobs) each passed the socket's frame limit (frameBytesMax), and the repair failed.
import { MailstoreError, assert, isMailstoreError } from '../errors.js';
import { isDamage, type Finding } from '../scrub/findings.js';
import { repair, type RepairOptions, type RepairResult } from '../scrub/repair.js';
import type { ScrubOptions, ScrubProgress, ScrubReport } from '../scrub/scrub.js';
import type { Store } from '../store/store.js';
import { daemonLimits } from '../limits.js';
import { findingPieces, scrubEvents, collectScrubReport, type ScrubEvent } from './scrub-listing.js';

/**
 * What repairEvents yields: the scrub's progress, then the findings before the repair in pieces,
 * the lists of the result in pieces (the findings after it, the quarantined copies, the dropped
 * blobs), and the result last, its lists holding what was not listed before it.
 */
export type RepairEvent =
  | { progress: ScrubProgress }
  | { before: Finding[] }
  | { after: Finding[] }
  | { quarantined: string[] }
  | { dropped: string[] }
  | { result: RepairResult };

/** The scrub, then the repair of its report; the findings the repair does not use (informational) are dropped from the report it keeps. */
export async function* repairEvents(store: Store, scrubOptions: ScrubOptions = {}, options: RepairOptions = {}): AsyncGenerator<RepairEvent> {
  let before: ScrubReport | undefined;
  for await (const event of scrubEvents(store, scrubOptions)) {
    if (event.progress) yield { progress: event.progress };
    else if (event.report) before = event.report;
  }
  assert(before !== undefined, 'scrubEvents ended without a report');
  for (const piece of findingPieces(before.findings)) yield { before: piece };
  const result = await repair(store, before, options);
  yield* resultPieces(result);
}

/** A repair's result as pieces of about backupSessionPartEntries entries, then the rest (its lists empty). */
function* resultPieces(result: RepairResult): Generator<RepairEvent> {
  for (const piece of findingPieces(result.after.findings)) yield { after: piece };
  const part = daemonLimits.backupSessionPartEntries;
  for (let at = 0; at < result.quarantined.length; at += part) yield { quarantined: result.quarantined.slice(at, at + part) };
  for (let at = 0; at < result.dropped.length; at += part) yield { dropped: result.dropped.slice(at, at + part) };
  yield {
    result: {
      ...result, before: { ...result.before, findings: [] }, after: { ...result.after, findings: [] }, quarantined: [], dropped: [], unrepaired: [],
    },
  };
}

/**
 * The repair's result from repairEvents' pieces (its `before` the scrub's whole report, the
 * findings the repair does not use included); progress to onProgress.
 */
export async function collectRepair(events: AsyncGenerator<RepairEvent>, onProgress: (progress: ScrubProgress) => void): Promise<RepairResult> {
  const lists = { before: [] as Finding[], after: [] as Finding[], quarantined: [] as string[], dropped: [] as string[] };
  for await (const event of events) {
    if ('progress' in event) onProgress(event.progress);
    else if ('before' in event) for (const f of event.before) lists.before.push(f);
    else if ('after' in event) for (const f of event.after) lists.after.push(f);
    else if ('quarantined' in event) for (const path of event.quarantined) lists.quarantined.push(path);
    else if ('dropped' in event) for (const hash of event.dropped) lists.dropped.push(hash);
    else return assembled(event.result, lists);
  }
  assert(false, 'the repair\'s listing ended without its result');
}

function assembled(result: RepairResult, lists: { before: Finding[]; after: Finding[]; quarantined: string[]; dropped: string[] }): RepairResult {
  const after = { ...result.after, findings: [...lists.after, ...result.after.findings] };
  return {
    ...result,
    before: { ...result.before, findings: [...lists.before, ...result.before.findings] },
    after,
    quarantined: [...lists.quarantined, ...result.quarantined],
    dropped: [...lists.dropped, ...result.dropped],
    unrepaired: after.findings.filter(isDamage),
  };
}

/** What runs a repair: the procedures of a Store or of a daemon's Client (procedures.ts). */
export interface RepairRunner {
  repairEvents(scrubOptions?: ScrubOptions, options?: RepairOptions): AsyncGenerator<RepairEvent>;
  scrubEvents(scrubOptions?: ScrubOptions, listing?: { findingsInPieces?: boolean }): AsyncGenerator<ScrubEvent>;
  repair(before: ScrubReport, options?: RepairOptions): Promise<RepairResult>;
}

/**
 * scrub --repair: repairEvents, or with a daemon before session 51 (no such procedure) its scrub
 * and then its repair of the report sent whole, the findings it does not use left out (648k
 * unreferenced blobs passed a frame); a report or result a frame still cannot hold is refused
 * naming the daemon's version.
 */
export async function scrubAndRepair(run: RepairRunner, scrubOptions: ScrubOptions, options: RepairOptions, onProgress: (progress: ScrubProgress) => void, lacksProcedure: (error: unknown) => boolean): Promise<RepairResult> {
  try {
    return await collectRepair(run.repairEvents(scrubOptions, options), onProgress);
  } catch (error) {
    if (!lacksProcedure(error)) throw error;
  }
  const before = await collectScrubReport(run.scrubEvents(scrubOptions, { findingsInPieces: true }), onProgress);
  assert(before !== undefined, 'scrubEvents ended without a report');
  try {
    const result = await run.repair({ ...before, findings: before.findings.filter(isDamage) }, options);
    return { ...result, before };
  } catch (error) {
    if (!isMailstoreError(error, 'INVALID') || !/frame of \d+ bytes exceeds/.test(error.message)) throw error;
    throw new MailstoreError('INVALID', `the repair's report or result is too big for one frame of the socket protocol (${error.message}): the daemon runs a mailstore before session 51, ` +
      `which takes them whole; restart it on this version (an upgrade it has not been restarted for), or stop it and run scrub --repair without the daemon`);
  }
}
