// scrub as a listing, so that its progress and its report cross the daemon's socket (a callback
// cannot, and the report as one item passed a frame on a big store): the daemon's side
// (scrubEvents, listScrubEvents) and the caller's (collectScrubReport).
import { scrub, type ScrubOptions, type ScrubProgress, type ScrubReport } from '../scrub/scrub.js';
import { daemonLimits, limits } from '../limits.js';
import { MailstoreError, isMailstoreError } from '../errors.js';
import type { Finding } from '../scrub/findings.js';
import { encodeFrame } from './protocol.js';
import { monotonicMs } from '../monotonic.js';
import type { Store } from '../store/store.js';

/**
 * What scrubEvents yields: progress now and then, then (to a caller that takes them so) the findings
 * in pieces, the report last: its findings are those not listed before it (collectScrubReport).
 */
export type ScrubEvent =
  | { progress: ScrubProgress; report?: undefined; findings?: undefined }
  | { findings: Finding[]; progress?: undefined; report?: undefined }
  | { report: ScrubReport; progress?: undefined; findings?: undefined };

/**
 * How the caller of scrubEvents takes the report. findingsInPieces (a client of session 50 or
 * later): the findings listed before it in pieces, since the report as one item exceeded a frame
 * (frameBytesMax) on a big store: 648k unreferenced blobs (expunged, not yet compacted) made it
 * 64 MB, and the nightly scrub through the daemon failed after all its work. A daemon before
 * session 50 ignores the argument and sends the report whole, which collectScrubReport takes too.
 */
export interface ScrubListing {
  findingsInPieces?: boolean;
}

/** scrubEvents' events as `listing` asks: the report's findings in pieces of about backupSessionPartEntries entries (a message a finding refers to counting as one). */
export async function* listScrubEvents(events: AsyncGenerator<ScrubEvent>, listing?: ScrubListing): AsyncGenerator<ScrubEvent> {
  for await (const event of events) {
    if (!event.report) {
      yield event;
      continue;
    }
    if (listing?.findingsInPieces !== true) {
      refuseWholeReport(event.report);
      yield event;
      continue;
    }
    const { findings, summary } = event.report;
    for (const piece of findingPieces(findings)) yield { findings: piece };
    yield { report: { findings: [], summary } };
  }
}

/** `findings` in pieces of about backupSessionPartEntries entries (a message a finding refers to counting as one). */
export function* findingPieces(findings: Finding[]): Generator<Finding[]> {
  let piece: Finding[] = [];
  let entries = 0;
  for (const finding of findings) {
    piece.push(finding);
    entries += 1 + ('refs' in finding ? finding.refs.length : 0);
    if (entries < daemonLimits.backupSessionPartEntries) continue;
    yield piece;
    piece = [];
    entries = 0;
  }
  if (piece.length > 0) yield piece;
}

/**
 * A report for a caller before session 50 (it takes it whole) that one frame cannot hold: refused
 * saying so, rather than as a frame too big for the socket protocol (the same exit, no hint).
 */
function refuseWholeReport(report: ScrubReport): void {
  if (report.findings.length < daemonLimits.backupSessionPartEntries) return; // well below a frame: not encoded twice
  try {
    encodeFrame({ t: 'item', id: 0, v: report });
  } catch (error) {
    if (!isMailstoreError(error, 'INVALID')) throw error;
    throw new MailstoreError('INVALID', `the scrub found ${report.findings.length} findings (damage ${report.summary.damage}, informational ${report.summary.informational}), ` +
      `a report bigger than one frame of the socket protocol, which a mailstore before session 50 takes whole: run this scrub with the daemon's mailstore version (it takes the findings in pieces)`);
  }
}

/**
 * The report of scrubEvents, its findings gathered from the pieces listed before it (a daemon of
 * session 50 or later) and from it (an older one, or one run here); progress to onProgress. Only
 * the findings `keep` takes are kept (the CLI's text tallies the informational ones instead).
 */
export async function collectScrubReport(events: AsyncGenerator<ScrubEvent>, onProgress: (progress: ScrubProgress) => void, keep: (finding: Finding) => boolean = () => true): Promise<ScrubReport | undefined> {
  const findings: Finding[] = [];
  try {
    for await (const event of events) {
      if (event.progress) onProgress(event.progress);
      else if (event.findings) for (const finding of event.findings) { if (keep(finding)) findings.push(finding); }
      else if (event.report) {
        for (const finding of event.report.findings) if (keep(finding)) findings.push(finding);
        return { ...event.report, findings };
      }
    }
  } catch (error) {
    // the daemon's own words (protocol.ts encodeFrame) for the report it sent as one item: a daemon before session 50
    if (!isMailstoreError(error, 'INVALID') || !/^a item frame of \d+ bytes exceeds/.test(error.message)) throw error;
    throw new MailstoreError('INVALID', `the daemon sent the scrub report as one frame, too big for the socket protocol (${error.message}): it runs a mailstore before session 50, ` +
      `which does not list the findings in pieces; restart it on this version (an upgrade it has not been restarted for), or stop it and run scrub without --through-daemon`);
  }
  return undefined;
}

/**
 * A scrub as a listing, so its progress can cross the daemon's socket (a callback cannot):
 * progress at most every progressRedrawMs, then the report. A reader that stops early (a CLI
 * interrupted, its connection gone) stops the pack pass where it is (a budgeted run writes its
 * cursor there): it read every pack of the store on for nobody, for hours on a big one. The report
 * whole: the procedure lists it as its caller takes it (listScrubEvents).
 */
export async function* scrubEvents(store: Store, options: ScrubOptions = {}): AsyncGenerator<ScrubEvent> {
  const queue: ScrubEvent[] = [];
  let wake: (() => void) | undefined;
  let done = false;
  let failure: unknown;
  let last = -Infinity;
  const onProgress = (progress: ScrubProgress) => {
    const now = monotonicMs(); // monotonic, as the CLI's meter
    if (now - last < limits.progressRedrawMs) return;
    last = now;
    queue.push({ progress });
    wake?.();
  };
  const stop = new AbortController();
  void scrub(store, { ...options, onProgress, signal: stop.signal })
    .then((report) => { queue.push({ report }); }, (error: unknown) => { failure = error; })
    .finally(() => { done = true; wake?.(); });
  try {
    for (;;) {
      while (queue.length > 0) yield queue.shift()!;
      if (failure !== undefined) throw failure;
      if (done) return;
      await new Promise<void>((resolve) => { wake = resolve; });
      wake = undefined;
    }
  } finally {
    if (!done) stop.abort();
  }
}
