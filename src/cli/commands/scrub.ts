// `mailstore scrub`: check everything, from cron. Check-only by default; --repair heals from
// --source copies and re-derives the index, after a sanity gate that refuses (exit 3) on a store
// that looks unmounted rather than damaged.
import type { Command } from 'commander';
import { MailstoreError, assert } from '../../errors.js';
import { parseDuration } from '../dates.js';
import { describeFinding, findingBytes, isDamage, type Finding, type UnlistedFindings } from '../../scrub/findings.js';
import { INLINE_PACK } from '../../blob/pack-store.js';
import { isUnreferencedBlobDamage } from '../../scrub/drop.js';
import { journalPrefix } from '../../fs/journal-stream.js';
import { resolve } from 'node:path';
import { collectScrubReport, procedures } from '../../daemon/procedures.js';
import { scrubAndRepair } from '../../daemon/repair-events.js';
import type { RepairResult } from '../../scrub/repair.js';
import type { ScrubOptions, ScrubReport } from '../../scrub/scrub.js';
import type { MailStore } from '../../store/api.js';
import { outsideNote, type QuarantineUse } from '../../store/quarantine.js';
import { EXIT } from '../exit-codes.js';
import { limits } from '../../limits.js';
import { boundYoungGeneration } from '../../young-generation.js';
import { createProgress, formatBytes } from '../progress.js';
import { absolutePath, printJson, printJsonLine, printLine, storeDir, wantsJson, warn, withDaemon, withReadStore, withStore } from '../context.js';

/** --json: one document, as every command prints; --jsonl: a finding a line as it is printed, then the summary. */
type Output = 'text' | 'json' | 'jsonl';
/** How much the text output says: --quiet (damage and one summary line), default, --verbose (every finding). */
type Detail = 'quiet' | 'normal' | 'verbose';

interface ScrubCliOptions {
  repair?: boolean; source?: string[]; replicationKey?: string; force?: boolean; maxRate?: number; maxObjectRate?: number; objects?: 'read' | 'checksum'; timeBudget?: number; threads?: number; jsonl?: boolean;
  quiet?: boolean; verbose?: boolean; dropUnreferenced?: boolean; mailbox?: string; throughDaemon?: boolean;
}

function parseRate(text: string, option = '--max-rate'): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new MailstoreError('INVALID', `${option} takes MB/s, a positive number; got ${JSON.stringify(text)}`);
  return n * 1_000_000;
}

function parseObjects(text: string): 'read' | 'checksum' {
  if (text !== 'read' && text !== 'checksum') throw new MailstoreError('INVALID', `--objects takes read or checksum; got ${JSON.stringify(text)}`);
  return text;
}

function parseThreads(text: string): number {
  if (!/^[0-9]+$/.test(text) || Number(text) > limits.hashThreadsMax) throw new MailstoreError('INVALID', `--threads takes 0..${limits.hashThreadsMax} worker threads; got ${JSON.stringify(text)}`);
  return Number(text);
}

/** What `scrub --help` says after the options. */
const HELP_AFTER = `
What it checks: every pack record is re-hashed (BLAKE3); frame and header checksums of packs and
journal segments; the index against the primary data (blob locations, refcounts, names, the
reverse ACL map, counts, uidNext, the change log).

It runs in the daemon when one serves the store (mailstore serve), else in this process, which
then holds the store's lock until it ends (a daemon started meanwhile waits, then fails LOCKED).
--through-daemon never opens the store here: with no daemon serving it, it does nothing and exits
75 (skipped), for a job that must not keep the daemon out (the package's nightly scrub); a
directory that holds no store is refused as ever (3 or 4). Pack
reading runs beside writers; the index cross-check briefly holds the writer.

Exit codes: 0 clean; 1 findings (damage found, or left unrepaired); 2 could not run (locked,
access, I/O); 3 refused (the store looks unmounted or its packs/journal are missing — check
mounts; with --repair, --force overrides the gate and restores missing packs' blobs from --source); 4 no store,
or --mailbox names no mailbox;
5 invalid options; 70 internal error (a bug: an assertion failed; please report it); 75 skipped
(--through-daemon, no daemon serves the store: nothing was checked).
Informational findings (unreferenced blobs awaiting cleanup, garbage after the last record of a
pack, dropped blobs) do not change the exit code; the text output counts them by kind, with
their bytes, and lists them only with --verbose. Every output lists at most the first ${limits.scrubListedPerKindMax.toLocaleString("en")} of a
kind (648k unreferenced blobs await compaction after a big expunge): --json and --jsonl carry those,
with "damage": false, and summary.unlisted counts the rest by kind with their bytes; summary.informational
counts them all. Damage is always listed whole.

Scoped (--mailbox PREFIX, like doveadm force-resync or Cyrus reconstruct -r): verifies only the
blobs the messages of PREFIX and the mailboxes below it use, and those mailboxes' index records
(counts, uidNext, name entry, reverse ACL map, change log, refcounts covering their references).
The journal, the other mailboxes and unreferenced records are not looked at: run a full scrub too.
It reads one blob at a time in this process (--max-rate, --threads and --time-budget are for the
full scrub's pack pass).

Damage to a blob that no message uses (an expunged message's body) cannot be healed without a
copy, and nothing needs it: 'scrub --repair --drop-unreferenced' copies its record to quarantine/,
then journals it as dropped; later scrubs report it as informational (exit 0) for as long as no
message uses it. Nothing is deleted (RECOVERY.md).

From cron (cron mails whatever a job prints; this prints, so mails, only when scrub exits non-zero;
on a clean store --quiet prints one line):
  17 3 * * *  out=$(mailstore --store /var/spool/mailstore scrub --quiet --max-rate 50 --time-budget 2h 2>&1) || echo "$out"`;

export function register(program: Command): void {
  program
    .command('scrub')
    .description('re-verify every stored byte and cross-check the index (check-only unless --repair)')
    .option('--repair', 'quarantine damaged records, restore them from --source copies, re-derive the index')
    .option('--source <dir...>', 'another mailstore (replica or copy), a running node HOST:PORT (its --replication-listen; blobs fetched by hash and verified), or a directory of raw messages to heal from')
    .option('--replication-key <file>', 'with a --source HOST:PORT: the replication key file (default: the one this store\'s REPLICATION names)')
    .option('--force', 'with --repair: repair even when the damage looks like a missing partition (overrides the sanity gate), also when every pack file is gone (packs/STORE-ID still there): their blobs are restored from --source, each verified by its hash')
    .option('--max-rate <MBps>', 'read packs at most this fast, MB/s', (t) => parseRate(t))
    .option('--max-object-rate <MBps>', 'read packs in the object store (over the network) at most this fast, MB/s; --max-rate still bounds all reads', (t) => parseRate(t, '--max-object-rate'))
    .option('--objects <read|checksum>', "packs in the object store: 'read' re-hashes every record (default); 'checksum' trusts an object whose size and MD5 ETag still match the move's, reading only those that do not (for runs between full passes)", parseObjects)
    .option('--time-budget <duration>', 'stop after this long (e.g. 10m) and resume there next run (durable cursor)', (text: string) => parseDuration(text, '--time-budget'))
    .option('--threads <n>', 'worker threads hashing beside the reader (default: cores - 1 for 64 MiB and more once records average 16 KiB, none with --max-rate; 0: none)', parseThreads)
    .option('--mailbox <prefix>', 'check only this mailbox and those below it: every blob their messages use (read and hashed) and their index records')
    .option('--through-daemon', 'only in the daemon serving the store: with none, open nothing and exit 75 (skipped), so the store is never held against a daemon starting')
    .option('--quiet', 'for cron: print only damage and one summary line (nothing else on a clean store)')
    .option('--verbose', 'also list the informational findings one per line (by default they are only counted)')
    .option('--drop-unreferenced', 'with --repair: record damaged blobs that no message uses (and no --source restored) as dropped, so they stop counting as damage; no bytes are deleted')
    .option('--json', 'print one JSON document: {findings, summary} (with --repair also unrepaired)')
    .option('--jsonl', 'print JSON lines instead: one object per finding, then {summary}')
    .addHelpText('after', HELP_AFTER)
    .action(runScrub);
}

async function runScrub(options: ScrubCliOptions, command: Command): Promise<void> {
  const { output, detail } = checkOptions(options, command);
  boundYoungGeneration(); // a pass over every pack and index key (young-generation.ts)
  if (options.throughDaemon) {
    const done = await withDaemon(command, (store) => scrubAndReport(store, options, output, detail));
    process.exitCode = done ? done.result : await reportSkipped(command, output);
    return;
  }
  // a check should not be killed by a damaged index; one that writes nothing (no repair, no cursor)
  // runs on a store it may only read, e.g. a copy on read-only media
  const open = options.repair || options.timeBudget !== undefined ? withStore : withReadStore;
  const code = await open(command, (store) => scrubAndReport(store, options, output, detail),
    { probeIndex: 'always', allowMissingPacks: Boolean(options.repair && options.force && options.source?.length) });
  process.exitCode = code;
}

/** --through-daemon with no daemon: said on stderr (a warning: the store went unchecked), and to --json readers. */
async function reportSkipped(command: Command, output: Output): Promise<number> {
  const reason = `no daemon serves ${storeDir(command)}; nothing was checked (--through-daemon opens no store here: start the daemon, or run scrub without it)`;
  warn(`scrub skipped: ${reason}`);
  if (output !== 'text') await printJsonLine({ skipped: true, reason });
  return EXIT.skipped;
}

/** Refuses (INVALID, exit 5) the combinations that make no sense, before the store is opened. */
function checkOptions(options: ScrubCliOptions, command: Command): { output: Output; detail: Detail } {
  if (options.jsonl && wantsJson(command)) throw new MailstoreError('INVALID', '--json and --jsonl: choose one');
  if (options.quiet && options.verbose) throw new MailstoreError('INVALID', '--quiet and --verbose: choose one');
  if (options.dropUnreferenced && !options.repair) throw new MailstoreError('INVALID', '--drop-unreferenced is only used with --repair');
  if (options.mailbox !== undefined && options.timeBudget !== undefined) throw new MailstoreError('INVALID', '--mailbox checks one subtree in one run; drop --time-budget');
  const output: Output = options.jsonl ? 'jsonl' : wantsJson(command) ? 'json' : 'text';
  const detail: Detail = options.quiet ? 'quiet' : options.verbose ? 'verbose' : 'normal';
  if (options.source && !options.repair) throw new MailstoreError('INVALID', '--source is only used with --repair');
  // silently ignored before: an admin who meant to repair ran a check and read its exit 1 as the repair's
  if (options.force && !options.repair) throw new MailstoreError('INVALID', '--force is only used with --repair (a check changes nothing: there is no gate to override)');
  if (options.replicationKey !== undefined && !options.source) throw new MailstoreError('INVALID', '--replication-key is only used with --source HOST:PORT');
  if (options.repair && options.timeBudget !== undefined) throw new MailstoreError('INVALID', '--repair needs a full scrub; drop --time-budget');
  return { output, detail };
}

/** Scrubs, then either prints the findings or repairs them; returns the exit code. */
async function scrubAndReport(store: MailStore, options: ScrubCliOptions, output: Output, detail: Detail): Promise<number> {
  const progress = options.quiet ? { position: () => undefined, finish: () => undefined } : createProgress('scrub');
  const scrubOptions = {
    mailbox: options.mailbox,
    maxRateBytesPerSecond: options.maxRate,
    maxObjectRateBytesPerSecond: options.maxObjectRate,
    objects: options.objects,
    timeBudgetMs: options.timeBudget,
    hashThreads: options.threads,
    onProgress: (p: { bytesDone: number; bytesTotal: number }) => progress.position(p.bytesDone, Math.max(p.bytesTotal, 1)),
  };
  if (options.repair) return repairAndReport(store, options, scrubOptions, output, progress);
  // As events, so that the progress also crosses a daemon's socket when the scrub runs there, and
  // the findings in pieces: a big store's report as one item passed a frame (64 MB, 648k unreferenced blobs)
  // The text of a check lists only damage (unless --verbose): the informational findings are
  // tallied as they come and not kept, 648k of them held in this process for their count
  const tally = new InformationalTally();
  const counted = output === 'text' && detail !== 'verbose';
  const report = await collectScrubReport(procedures(store).scrubEvents(scrubOptions, { findingsInPieces: true }), scrubOptions.onProgress,
    counted ? (f) => isDamage(f) || !tally.add(f) : undefined);
  progress.finish();
  assert(report !== undefined, 'scrubEvents ended without a report');
  // a replica takes no repair (READ_ONLY_REPLICA): the hint names what heals it instead. A daemon
  // older than the question (an upgrade it has not been restarted for) leaves the hint out
  const replica = report.summary.damage > 0 && output === 'text' && (await procedures(store).replicationRole().then((role) => role === 'replica', () => false));
  await print(report.findings, report, output, detail, replica, counted ? tally.addUnlisted(report.summary.unlisted) : InformationalTally.of(report.findings, report.summary.unlisted));
  return report.summary.damage > 0 ? EXIT.findings : EXIT.ok;
}

/**
 * --repair: scrubs, heals what the scrub found and prints the findings before, what is left, and a
 * summary. Both run where the store is, the reports crossing a daemon's socket in pieces (repair-events.ts).
 */
async function repairAndReport(store: MailStore, options: ScrubCliOptions, scrubOptions: ScrubOptions, output: Output, progress: { finish: () => void }): Promise<number> {
  const { lacksProcedure } = await import('../../client/client.js');
  const result = await scrubAndRepair(procedures(store), scrubOptions, {
    // a directory and the key file are made absolute (through a daemon the repair runs there, in its
    // own working directory); HOST:PORT names a node (replication listener) and is kept as it is
    sources: options.source?.map((source) => (/^[^/]*:\d+$/.test(source) ? source : absolutePath(source))),
    replicationKey: options.replicationKey && absolutePath(options.replicationKey), force: options.force, dropUnreferenced: options.dropUnreferenced,
    scrubOptions: { mailbox: options.mailbox, maxRateBytesPerSecond: options.maxRate, hashThreads: options.threads },
  }, scrubOptions.onProgress ?? (() => undefined), (error) => lacksProcedure(error, 'repairEvents'));
  progress.finish();
  const report = result.before;
  const summary = {
    ...result.after.summary, repaired: true, damageBefore: report.summary.damage, blobsRestored: result.blobsRestored,
    quarantined: result.quarantined, indexRebuilt: result.indexRebuilt, journalRewritten: result.journalRewritten, dropped: result.dropped,
    ...(result.modseqsRaisedAbove === undefined ? {} : { modseqsRaisedAbove: result.modseqsRaisedAbove }),
    ...(result.recounted === undefined ? {} : { recounted: result.recounted }), unrepaired: result.unrepaired.length,
  };
  if (output === 'json') {
    await printJson({ findings: report.findings.map((f) => ({ ...f, damage: isDamage(f) })), unrepaired: result.unrepaired, summary });
  } else if (output === 'jsonl') {
    for (const f of report.findings) await printJsonLine({ ...f, before: true });
    for (const f of result.unrepaired) await printJsonLine({ ...f, unrepaired: true });
    await printJsonLine({ summary });
  } else {
    await printRepairText(report, result, options);
  }
  return result.unrepaired.length > 0 ? EXIT.findings : EXIT.ok;
}

async function printRepairText(report: ScrubReport, result: RepairResult, options: ScrubCliOptions): Promise<void> {
  await printLine(`found ${report.summary.damage} damaged item(s); restored ${result.blobsRestored} blob(s) from sources; quarantined ${result.quarantined.length} record copy(ies)` +
    `${result.dropped.length ? `; dropped ${result.dropped.length} damaged blob(s) no message uses` : ''}${result.indexRebuilt ? '; index rebuilt from the journal' : ''}` +
    `${result.journalRewritten ? '; damaged journal replaced by one written from the index (the old one is in quarantine/)' : ''}` +
    `${result.modseqsRaisedAbove !== undefined ? `; modseq offset raised: the next change gets a modseq above ${result.modseqsRaisedAbove}` : ''}` +
    `${result.recounted ? `; recounted from the messages (the journal held them wrong): ${result.recounted.mailboxes.length} mailbox(es)' counters, ${result.recounted.blobs} refcount(s)` : ''}`);
  if (result.unrepaired.length) {
    await printLine(`could not repair ${result.unrepaired.length}:`);
    await printTable(result.unrepaired);
    if (!options.dropUnreferenced && result.unrepaired.some(isUnreferencedBlobDamage)) await printLine(`damaged blobs no message uses: 'mailstore scrub --repair --drop-unreferenced' clears them`);
  } else {
    await printLine(`second scrub: clean${InformationalTally.of(result.after.findings, result.after.summary.unlisted).counts()}`);
  }
}

async function printTable(findings: Finding[]): Promise<void> {
  const rows = findings.map((f) => ({ kind: f.kind, ...describeFinding(f), damage: isDamage(f) }));
  // reduces, not spreads: damage can make more findings than a call takes arguments (~120k)
  const kindWidth = rows.reduce((most, r) => Math.max(most, r.kind.length), 4);
  const whereWidth = rows.reduce((most, r) => Math.max(most, r.where.length), 5);
  await printLine(`${'KIND'.padEnd(kindWidth)}  ${'WHERE'.padEnd(whereWidth)}  WHAT`);
  for (const r of rows) await printLine(`${r.kind.padEnd(kindWidth)}  ${r.where.padEnd(whereWidth)}  ${r.damage ? '' : '(info) '}${r.what}`);
}

async function print(findings: Finding[], report: ScrubReport, output: Output, detail: Detail, replica: boolean, informational: InformationalTally): Promise<void> {
  const s = report.summary;
  if (output === 'json') return printJson({ findings: findings.map((f) => ({ ...f, damage: isDamage(f) })), summary: s });
  if (output === 'jsonl') {
    for (const f of findings) await printJsonLine({ ...f, damage: isDamage(f) });
    await printJsonLine({ summary: s });
    return;
  }
  // Damage one per line; informational findings only counted unless --verbose.
  const listed = detail === 'verbose' ? findings : findings.filter(isDamage);
  if (listed.length) await printTable(listed);
  const coverage = s.scope ? `${s.scope.mailboxes} mailbox(es) under ${s.scope.mailbox}` :
    s.cycleComplete ? 'full cycle' : `stopped at the time budget; next run resumes at pack ${s.scanned.at(-1)?.pack} offset ${s.scanned.at(-1)?.to}`;
  const counted = `scrub: ${s.blobsVerified} blobs (${formatBytes(s.bytesVerified)})${s.scope ? '' : ` in ${s.packs} pack(s), ${s.journalRecords} journal records${s.snapshotsVerified ? `, ${s.snapshotsVerified} snapshot(s)` : ''}`}, ${s.indexKeys} index keys in ${s.seconds.toFixed(1)}s (${coverage})`;
  const info = informational.counts() + listedNote(s, detail) + quarantineNote(s.quarantine);
  if (detail === 'quiet' && s.damage === 0) return printLine(`${counted}: clean${info}`);
  await printLine(counted);
  if (s.damage === 0) return printLine(`clean${info}`);
  const hint = findings.some(isUnreferencedBlobDamage) ? `; damaged blobs no message uses: 'mailstore scrub --repair --drop-unreferenced'` : '';
  // a damaged cursor or setting, an archive not mounted: --repair heals none of them, each line says what does
  // the one line of a damaged run at err in the journal (the nightly unit's): the table stays at its default
  const damage = findings.filter(isDamage);
  const heal = damage.every((f) => OWN_REMEDY.has(f.kind))
    ? 'each says what to do (--repair does not mend these)'
    : replica && damage.every(isInlineMissing)
      ? REPLICA_WITHOUT_INLINE_BODIES
    : replica
      ? `this store is a replica, which takes no repair (READ_ONLY_REPLICA): move its directory aside and start the replica again in an empty one (it copies its primary afresh); once promoted instead, 'mailstore scrub --repair --source COPY' heals it from the old primary or a copy`
      : `run 'mailstore scrub --repair --source COPY' to heal${hint}`;
  await printLine(`${journalPrefix('error', 1)}${s.damage} finding(s) of damage${info}; ${heal}`);
}

/** A body the index keeps inside a journal record that is not there (no damaged bytes found: the record is gone). */
const isInlineMissing = (f: Finding) => f.kind === 'blob-missing' && f.pack === INLINE_PACK;

/**
 * A replica missing only inline bodies: its resync sent neither their records (the snapshot covers
 * them) nor a copy of them in a pack. A primary of session 32 or later moves them into packs for
 * the resync; one before does not, nor does a later one whose synchronous-replica gate refused the
 * move. Each ships them with its next move of inline bodies, which every snapshot makes before it
 * retires (the moving records reach the replica as any append). A new copy of the same primary
 * would lack them again (found by opening replicas of this code beside a primary of 8fc479f).
 */
const REPLICA_WITHOUT_INLINE_BODIES = `this store is a replica whose journal starts after the records holding these messages' bodies (inline bodies), and its primary has not yet sent them in a pack ` +
  `(a primary before session 32 does not with a resync: docs/FORMAT.md, "Compatibility"): run 'mailstore snapshot' on the primary (its retirement moves inline bodies into packs, and the replica gets them as any change; ` +
  `a second one when the first retires nothing), then scrub here again. Do not promote this replica until its scrub is clean: those messages would be lost`;

/** Damage whose finding names its own remedy, which no `scrub --repair` applies. */
const OWN_REMEDY: ReadonlySet<string> = new Set(['store-file-damage', 'journal-archive-unusable', 'pending-round-damage']);

/** Where the informational findings are listed: with --verbose, but past the first of a kind only counted (ListingCap). */
function listedNote(s: ScrubReport['summary'], detail: Detail): string {
  if (!s.informational) return '';
  const unlisted = Object.values(s.unlisted ?? {}).reduce((sum, kind) => sum + kind.count, 0);
  const cap = unlisted ? `, but the first ${limits.scrubListedPerKindMax} of a kind: ${unlisted} are counted only` : '';
  return detail === 'verbose' ? (cap ? `; listed${cap}` : '') : `; --verbose lists them${cap}`;
}

/** What quarantine/ holds, or "" when it is empty (or a daemon before session 37 did not say). */
function quarantineNote(held: QuarantineUse | undefined): string {
  if (!held?.entries) return '';
  return `; quarantine/ holds ${held.entries} entr${held.entries === 1 ? 'y' : 'ies'} (${formatBytes(held.bytes)}${outsideNote(held)}): look, then remove by hand (RECOVERY.md)`;
}

/** The informational findings by kind: how many, and the bytes they stand for where they say. */
class InformationalTally {
  private readonly byKind = new Map<string, { n: number; bytes?: number }>();

  /** The report's informational findings: those it lists, and those it counted without listing (ScrubSummary.unlisted). */
  static of(findings: Finding[], unlisted?: UnlistedFindings): InformationalTally {
    const tally = new InformationalTally();
    for (const f of findings) if (!isDamage(f)) tally.add(f);
    return tally.addUnlisted(unlisted);
  }

  /** Adds the findings a report counted without listing them. */
  addUnlisted(unlisted: UnlistedFindings | undefined): this {
    for (const [kind, { count, bytes }] of Object.entries(unlisted ?? {})) {
      const known = this.byKind.get(kind) ?? { n: 0 };
      known.n += count;
      known.bytes = (known.bytes ?? 0) + bytes;
      this.byKind.set(kind, known);
    }
    return this;
  }

  /** Counts an informational finding; true (it is counted). */
  add(f: Finding): true {
    const kind = this.byKind.get(f.kind) ?? { n: 0 };
    const bytes = findingBytes(f);
    kind.n++;
    if (bytes !== undefined) kind.bytes = (kind.bytes ?? 0) + bytes;
    this.byKind.set(f.kind, kind);
    return true;
  }

  /**
   * " (3 informational: 2 unreferenced-pack-record (1.2 KiB), 1 unreferenced-blob (600 B))", or ""
   * when there are none: a kind's count and bytes, which is what an admin weighs (648k unreferenced
   * blobs awaiting compaction are one line, their size the space a compaction gives back).
   */
  counts(): string {
    if (this.byKind.size === 0) return '';
    const total = [...this.byKind.values()].reduce((a, b) => a + b.n, 0);
    return ` (${total} informational: ${[...this.byKind].map(([kind, { n, bytes }]) => `${n} ${kind}${bytes === undefined ? '' : ` (${formatBytes(bytes)})`}`).join(', ')})`;
  }
}
