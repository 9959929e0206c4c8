// The replication section of the report (issue 15): a copy of the corpus to an empty replica beside
// Cyrus (sync_client -> sync_server) and doveadm sync; one-writer delivery with one synchronous
// replica vs none beside Cyrus's LMTP delivery (the peers step's); catch-up and `replica check`,
// on the main corpus and, with --scale, a 1M-message store. Goal rows: median of the rounds.
import type { BenchResult } from './common.js';
import { COLUMNS, firstRound, goalLine, median, num, rateGoal, roundOf, table, type Goal, type RunData, type Spread, type TaggedResult } from './report.js';

const MiB = 1024 * 1024;
const msgRate = (r: BenchResult) => (r.messages && r.seconds ? r.messages / r.seconds : undefined);
const mbRate = (r: BenchResult) => (r.bytes && r.seconds ? r.bytes / r.seconds / 1e6 : undefined);
const int = (n: number) => Math.round(n).toLocaleString('en-US');
const ok = (r: TaggedResult | undefined): r is TaggedResult => r !== undefined && !r.error;

function find(results: TaggedResult[], peer: string, measurement: string): TaggedResult | undefined {
  return results.find((r) => r.peer === peer && r.measurement === measurement && !r.error);
}

/** CPU a delivery (user + system, measure/replication.ts): the primary's process, all threads, and the replica process's. */
const DELIVER_CPU_COLUMN = {
  title: 'CPU µs a delivery: primary / replica',
  value: (r: TaggedResult) => (typeof r.cpu_us_per_message === 'number' ? `${num(r.cpu_us_per_message, 0)}${typeof r.replica_cpu_us_per_message === 'number' ? ` / ${num(r.replica_cpu_us_per_message, 0)}` : ''}` : ''),
};

const spreadOf = (m: Spread) => (m.n > 1 ? `, median of ${m.n} rounds, spread ${num(m.min)}–${num(m.max)}×` : ', 1 round');

/** Synchronous-replica p50 ÷ unreplicated p50 in each round; verdict on the median (≤ 2×). */
export function latencyGoal(results: TaggedResult[]): Goal {
  const text = 'delivery with 1 synchronous replica: single-writer p50 latency ≤ 2× unreplicated';
  const rounds = [...new Set(results.map(roundOf))].sort((a, b) => a - b);
  const pairs = rounds.flatMap((round) => {
    const inRound = results.filter((r) => roundOf(r) === round);
    const sync = find(inRound, 'mailstore-sync1', 'repl-deliver'), alone = find(inRound, 'mailstore-unreplicated', 'repl-deliver');
    return sync?.p50_ms && alone?.p50_ms ? [{ ratio: sync.p50_ms / alone.p50_ms, sync, alone }] : [];
  });
  if (pairs.length === 0) return { text, measured: '', pass: undefined };
  const m = median(pairs.map((p) => p.ratio));
  const middle = pairs.reduce((best, p) => (Math.abs(p.ratio - m.median) < Math.abs(best.ratio - m.median) ? p : best));
  return {
    text,
    measured: `${num(m.median)}× (p50 ${num(middle.sync.p50_ms)} vs ${num(middle.alone.p50_ms)} ms, p99 ${num(middle.sync.p99_ms)} vs ${num(middle.alone.p99_ms)} ms${spreadOf(m)})`,
    pass: m.median <= 2,
  };
}

/**
 * The same two shapes with no store logic (measure/sync-repl-floor.ts), per round: what one disk,
 * two shared cores and a loopback round trip alone make of the ratio, and the latency a synchronous
 * replica adds there against what it adds to mailstore.
 */
export function latencyFloor(results: TaggedResult[]): string | undefined {
  const rounds = [...new Set(results.map(roundOf))].sort((a, b) => a - b);
  const pairs = rounds.flatMap((round) => {
    const inRound = results.filter((r) => roundOf(r) === round);
    const sync = find(inRound, 'floor-repl-sync1', 'repl-deliver'), alone = find(inRound, 'floor-repl-alone', 'repl-deliver');
    const ours = find(inRound, 'mailstore-sync1', 'repl-deliver'), oursAlone = find(inRound, 'mailstore-unreplicated', 'repl-deliver');
    if (!sync?.p50_ms || !alone?.p50_ms) return [];
    return [{ ratio: sync.p50_ms / alone.p50_ms, added: sync.p50_ms - alone.p50_ms, oursAdded: ours?.p50_ms && oursAlone?.p50_ms ? ours.p50_ms - oursAlone.p50_ms : undefined }];
  });
  if (pairs.length === 0) return undefined;
  const ratio = median(pairs.map((p) => p.ratio));
  const added = median(pairs.map((p) => p.added));
  const oursAdded = pairs.every((p) => p.oursAdded !== undefined) ? median(pairs.map((p) => p.oursAdded!)) : undefined;
  return `Floor: with no store logic (floor-repl rows: a zero-filled file written and fdatasynced, and for sync1 the same bytes first sent over loopback TCP to a second process that writes and fdatasyncs them on the same disk), one synchronous replica makes the p50 ${num(ratio.median)}× (${spreadOf(ratio).slice(2)}) and adds ${num(added.median, 3)} ms to it` +
    (oursAdded ? `; to mailstore it adds ${num(oursAdded.median, 3)} ms (median of the rounds).` : '.');
}

/** The 1M-message `replica check` goals (≤ 10 s, ≤ 256 MB); from a smaller store: its figures and no verdict. */
export function checkGoals(results: TaggedResult[]): Goal[] {
  const checks = results.filter((r) => r.peer === 'mailstore' && r.measurement === 'replica-check' && ok(r));
  const big = checks.filter((r) => (r.messages ?? 0) >= 1_000_000);
  const timeText = '`replica check` of a 1M-message store ≤ 10 s';
  const rssText = '`replica check` of a 1M-message store: peak RSS ≤ 256 MB';
  if (big.length > 0) {
    const r = big.reduce((a, b) => ((b.seconds ?? 0) > (a.seconds ?? 0) ? b : a));
    return [
      { text: timeText, measured: `${num(r.seconds, 2)} s for ${int(r.messages!)} messages (${int(msgRate(r)!)} messages/s)`, pass: r.seconds! <= 10 },
      { text: rssText, measured: `${num(r.peak_rss_bytes! / 1e6, 0)} MB (the checking process; the primary answering: ${num(Number(r.primary_peak_rss_bytes ?? 0) / 1e6, 0)} MB)`, pass: r.peak_rss_bytes! <= 256e6 },
    ];
  }
  // the largest store checked (a --quick --scale run checks a 10k store besides the main corpus)
  const small = checks.reduce<TaggedResult | undefined>((a, b) => (!a || (b.messages ?? 0) > (a.messages ?? 0) ? b : a), undefined);
  if (!small) return [{ text: timeText, measured: '', pass: undefined }, { text: rssText, measured: '', pass: undefined }];
  return [
    { text: `${timeText} (1M only with --scale)`, measured: `${num(small.seconds, 2)} s for ${int(small.messages!)} messages (process start and store open included: no rate to extrapolate from)`, pass: undefined },
    { text: `${rssText} (1M only with --scale)`, measured: `${num(small.peak_rss_bytes! / 1e6, 0)} MB at ${int(small.messages!)} messages`, pass: undefined },
  ];
}

function push(out: string[], goals: Goal[], goal: Goal): void {
  goals.push(goal);
  out.push(goalLine(goal));
}

/** The section, before the Goals table; its goal rows go into `goals`. */
export function replicationSection(out: string[], goals: Goal[], data: RunData): void {
  const allMain = data.results.filter((r) => r.corpus === 'main');
  const main = firstRound(allMain);
  out.push('### Replication (issue 15)\n');
  if (!allMain.some((r) => ['replicate', 'repl-deliver', 'catch-up', 'replica-check'].includes(r.measurement))) {
    out.push('_not run in this run (`--only replication`)_\n');
    return;
  }
  out.push('**A copy of the whole corpus to an empty replica.** mailstore: a library primary and a `mailstore serve --replica-of` process over loopback TLS-PSK; Cyrus: `sync_client -u` to `sync_server` over loopback TCP (no TLS); Dovecot: `doveadm sync` between two homes in one process (no network). MB/s over the corpus\'s message bytes.\n');
  out.push(table(main, ['mailstore:replicate', 'cyrus-sync:replicate', 'dovecot-dsync:replicate'],
    [COLUMNS.messages, COLUMNS.mb, COLUMNS.seconds, COLUMNS.msgRate, COLUMNS.mbRate, COLUMNS.rss], { base: 'mailstore:replicate', rate: mbRate, title: 'mailstore ÷ this (MB/s)' }));
  push(out, goals, rateGoal(allMain, 'replication ≥ 3× Cyrus sync_client → sync_server (MB/s, same corpus)', ['mailstore', 'replicate'], ['cyrus-sync', 'replicate'], 3, mbRate));

  out.push(`**One writer, each delivery awaited: no replica vs one synchronous replica** (${int(find(main, 'mailstore-sync1', 'repl-deliver')?.messages ?? 0)} messages; Cyrus LMTP from the peers step).\n`);
  out.push(table(main, ['mailstore-unreplicated:repl-deliver', 'mailstore-sync1:repl-deliver', 'floor-repl-alone:repl-deliver', 'floor-repl-sync1:repl-deliver', 'cyrus:deliver'],
    [COLUMNS.messages, COLUMNS.seconds, COLUMNS.msgRate, COLUMNS.latency, ...(main.some((r) => r.measurement === 'repl-deliver' && typeof r.cpu_us_per_message === 'number') ? [DELIVER_CPU_COLUMN] : [])],
    { base: 'mailstore-sync1:repl-deliver', rate: msgRate, title: 'sync-replicated ÷ this (messages/s)' }));
  push(out, goals, latencyGoal(allMain));
  const floor = latencyFloor(allMain);
  if (floor) out.push(`${floor}\n`);
  const cyrusGoal = rateGoal(allMain, 'delivery with 1 synchronous replica ≥ 2× Cyrus unreplicated LMTP messages/s', ['mailstore-sync1', 'repl-deliver'], ['cyrus', 'deliver'], 2, msgRate);
  push(out, goals, find(allMain, 'cyrus', 'deliver') ? cyrusGoal : { ...cyrusGoal, measured: 'Cyrus LMTP not measured in this run (the peers step measures it)' });

  out.push('**Catch-up after the replica was down, and `replica check`** (16 writers delivered while the replica process was stopped; the check is `mailstore replica check --json` as a process on the stopped replica).\n');
  const rows = firstRound(data.results).filter((r) => r.peer === 'mailstore' && (r.measurement === 'catch-up' || r.measurement === 'replica-check'));
  if (rows.length === 0) out.push('_not measured in this run_\n');
  else {
    out.push('| corpus | measurement | messages | MB | s | messages/s | MB/s | peak RSS MiB | note |\n|---|---|---|---|---|---|---|---|---|');
    for (const r of rows) {
      if (r.error) { out.push(`| ${r.corpus} | ${r.measurement} |  |  |  |  |  |  | **could not run**: ${r.error.replace(/\|/g, '\\|')} |`); continue; }
      const rss = r.peak_rss_bytes ? num(r.peak_rss_bytes / MiB, 0) + (r.primary_peak_rss_bytes ? ` (primary ${num(Number(r.primary_peak_rss_bytes) / MiB, 0)})` : '') : '';
      out.push(`| ${r.corpus} | ${r.measurement} | ${int(r.messages ?? 0)} | ${r.bytes ? num(r.bytes / 1e6, 1) : ''} | ${num(r.seconds, 3)} | ${num(msgRate(r), 1)} | ${num(mbRate(r), 1)} | ${rss} | ${(r.note ?? '').replace(/\|/g, '\\|')} |`);
    }
    out.push('');
  }
  for (const goal of checkGoals(data.results)) push(out, goals, goal);
}
