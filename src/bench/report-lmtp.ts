// The report section of the lmtp and daemon bench steps (issue 13, lmtp-steps.ts): LMTP delivery
// against Cyrus and Dovecot, 64 connections against one, the socket client against the library,
// and the daemon's RSS over many deliveries, with their goal rows (median of the rounds).
// The LMTP rows are of warm servers (lmtp-client.mjs --warmup: untimed deliveries first); the goal
// rows judge the warm figures and print the cold ratio (a freshly started server's) beside them.
import type { BenchResult } from './common.js';
import {
  COLD_COLUMNS, COLUMNS, find, firstRound, goalLine, median, num, perRound, rateGoal, spreadText, table, warmRateGoal, type Goal, type RunData, type TaggedResult,
} from './report.js';

const MiB = 1024 * 1024;
const msgRate = (r: BenchResult) => (r.messages && r.seconds ? r.messages / r.seconds : undefined);
const fixed = (n: number, digits = 2) => n.toFixed(digits);
/** The server's CPU per timed delivery (from /proc, lmtp-client-run.ts) and the client's own. */
const CPU_COLUMN = {
  title: 'CPU µs a delivery: server / client',
  value: (r: TaggedResult) => (typeof r.server_cpu_us_per_message === 'number' ? `${num(r.server_cpu_us_per_message, 0)} / ${typeof r.cpu_us_per_message === 'number' ? num(r.cpu_us_per_message, 0) : '–'}` : ''),
};

/** One RSS sample of the daemon as the result line carries it: [seconds, VmRSS bytes, RssAnon bytes]. */
export type RssSampleRow = [number, number, number];

export interface RssGrowth {
  /** Median VmRSS over the 20 % of the run after warm-up (10-30 %, or from the end of the first snapshot). */
  early: number;
  /** Median VmRSS over its last 10 %. */
  late: number;
  peak: number;
  /** late ÷ early. */
  growth: number;
  /** Where the after-warm-up window starts, as a fraction of the run (0.1 unless a snapshot ended later). */
  from: number;
}

/**
 * Growth of the daemon's RSS from after warm-up to the end (undefined with fewer than 5 samples,
 * or when warm-up leaves no room for the window before the last 10 %). Warm-up is the first 10 %
 * of the run and, when the daemon took an automatic snapshot (`settledAt`: the end of the first,
 * in seconds), everything up to its end: the heap, LevelDB's caches and glibc's malloc arenas
 * grow to their working set in the first ~10k deliveries, and the first snapshot (a walk of the
 * whole index beside the deliveries) raises the high-water mark that glibc keeps; later snapshots
 * do not raise it again. At 1M deliveries the first snapshot ends within the first 10 %.
 */
export function rssGrowth(samples: RssSampleRow[], settledAt = 0): RssGrowth | undefined {
  if (samples.length < 5) return undefined;
  const end = samples[samples.length - 1]![0];
  const from = Math.max(0.1, end > 0 ? settledAt / end : 0);
  if (from + 0.2 > 0.9) return undefined;
  const within = (a: number, b: number) => samples.filter(([t]) => t >= a * end && t <= b * end).map(([, rss]) => rss);
  const earlyValues = within(from, from + 0.2), lateValues = within(0.9, 1);
  if (earlyValues.length === 0 || lateValues.length === 0) return undefined;
  const early = median(earlyValues).median, late = median(lateValues).median;
  return { early, late, peak: Math.max(...samples.map(([, rss]) => rss)), growth: late / early, from };
}

/** The daemon's RSS counts as flat when its end is within this factor of its size after warm-up. */
export const RSS_FLAT_GROWTH_MAX = 1.1;

export function lmtpSection(out: string[], goals: Goal[], data: RunData): void {
  const allMain = data.results.filter((r) => r.corpus === 'main');
  const main = firstRound(allMain);
  if (!main.some((r) => ['lmtp', 'lmtp-rss', 'daemon'].includes(r.measurement))) return;
  const s = data.settings;
  const push = (goal: Goal) => { goals.push(goal); out.push(goalLine(goal)); };

  const warmup = find(main, 'mailstore', 'lmtp')?.warmup;
  const warmText = typeof warmup === 'number' && warmup > 0 ? warmup.toLocaleString('en-US') : undefined;
  out.push(`### LMTP delivery into the daemon (first ${(s.deliver ?? 0).toLocaleString('en-US')} messages, one connection; ${(s.concurrent ?? 0).toLocaleString('en-US')} over 64${warmText ? `; each server warmed by ${warmText} untimed deliveries first` : ''})\n`);
  out.push('Every row is `tools/bench/peers/lmtp-client.mjs`: one message at a time per connection, each waiting for its final reply (mailstore sends 250 once the append is durable). mailstore is `mailstore serve --lmtp unix:PATH`, a process of its own; its store is opened afterwards and the count checked. `mailstore deliver` is the library row of the delivery table (no daemon, no LMTP), for scale.\n');
  if (warmText) out.push(`Warm and cold: a mail server's LMTP daemon runs for weeks, so each server (Cyrus, Dovecot, mailstore with one connection and with 64) was started fresh and first given ${warmText} untimed deliveries over the same connections (the list's messages after the timed ones, so none repeats a timed one), then the timed ones. The \`messages/s\` and \`p50 / p99\` columns and the goals are those timed deliveries into the warm server; the \`cold\` columns are the warm-up deliveries, i.e. a freshly started server (mailstore's V8 JIT still compiling), and each goal line gives the cold ratio of the same run beside the warm one.\n`);
  out.push(table(main, ['mailstore:lmtp', 'mailstore-64c:lmtp', 'cyrus:lmtp', 'dovecot-mdbox:lmtp', 'floor-lmtp:lmtp', 'floor-lmtp-64c:lmtp', 'mailstore:deliver'],
    [COLUMNS.messages, COLUMNS.mb, COLUMNS.seconds, COLUMNS.msgRate, COLUMNS.latency, ...(warmText ? COLD_COLUMNS : []), ...(main.some((r) => typeof r.server_cpu_us_per_message === 'number') ? [CPU_COLUMN] : [])], { base: 'mailstore:lmtp', rate: msgRate, title: 'mailstore LMTP ÷ this (messages/s)' }));
  push(warmGoal(allMain, 'LMTP, one connection: mailstore ≥ 4× Cyrus lmtpd messages/s', ['mailstore', 'lmtp'], ['cyrus', 'lmtp'], 4, warmText));
  push(warmGoal(allMain, 'LMTP, one connection: mailstore ≥ 3× Dovecot LMTP (mdbox) messages/s', ['mailstore', 'lmtp'], ['dovecot-mdbox', 'lmtp'], 3, warmText));
  push(warmGoal(allMain, 'LMTP: 64 connections at once ≥ 5× one connection (messages/s)', ['mailstore-64c', 'lmtp'], ['mailstore', 'lmtp'], 5, warmText));
  floorLines(out, allMain);

  out.push('### The socket client against the library\n');
  out.push('`mailstore-library*` is measure/deliver.ts (the Store in the measuring process); `mailstore-client*` appends through mailstore/client to a `mailstore serve` process, one client in the measuring process or 64 client processes started together. Same messages, same round.\n');
  const daemonWarm = main.some((r) => r.measurement === 'daemon' && typeof r.cold_p50_ms === 'number');
  if (daemonWarm) out.push('The one-writer pair is warmed alike: each first appends the same number of messages untimed (the list\'s messages after the timed ones), in the `cold` columns; the goal is on the timed appends after them.\n');
  const manyWarmup = find(main, 'mailstore-client-64p', 'daemon')?.warmup;
  if (typeof manyWarmup === 'number') out.push(`The 64-writer and 64-process rows are warmed alike too: ${manyWarmup.toLocaleString('en-US')} untimed appends first, shared by the 64 writers and by the 64 processes (the same count each; the processes all start them together on one word, the timed ones on a second), so the timed appends measure warm code on both sides (a mail server's delivery processes live long) and the \`cold\` columns are the 64 freshly started processes. \`floor-client-64p\` is the same 64 processes, messages and frames against a server that does no store work (the daemon's transport decodes each frame and answers it at once).\n`);
  out.push(table(main, ['mailstore-library:daemon', 'mailstore-client:daemon', 'mailstore-library-64w:daemon', 'mailstore-client-64p:daemon', 'floor-client-64p:daemon'],
    [COLUMNS.messages, COLUMNS.seconds, COLUMNS.msgRate, COLUMNS.latency, ...(daemonWarm ? COLD_COLUMNS : []), ...(main.some((r) => r.measurement === 'daemon' && typeof r.client_cpu_us_per_message === 'number') ? [DAEMON_CPU_COLUMN] : [])]));
  push(clientLatencyGoal(allMain));
  push(concurrentClientsGoal(allMain, typeof manyWarmup === 'number' && manyWarmup > 0 ? manyWarmup.toLocaleString('en-US') : undefined));
  const floor = concurrentClientsFloor(allMain);
  if (floor) out.push(`${floor}\n`);

  rssSection(out, push, main);
}

/**
 * The 64-connection goal against its floor (measure/lmtp-floor.ts, the same client against
 * smtp-server with no store): how far the client and smtp-server alone scale on this machine, and
 * mailstore's 64-connection rate as a share of the floor's. Read beside the goal, not judged.
 */
function floorLines(out: string[], allMain: TaggedResult[]): void {
  const scaling = rateGoal(allMain, '', ['floor-lmtp-64c', 'lmtp'], ['floor-lmtp', 'lmtp'], 5, msgRate);
  const share = rateGoal(allMain, '', ['mailstore-64c', 'lmtp'], ['floor-lmtp-64c', 'lmtp'], 1, msgRate);
  if (!scaling.measured) return;
  out.push(`Floor of the 64-connection goal (\`floor-lmtp\` rows: the same client, messages and warm-up against smtp-server in LMTP mode that answers 250 and keeps nothing): 64 connections ÷ one = ${scaling.measured}; mailstore's 64 connections ÷ the floor's 64 = ${share.measured || 'not measured'}. The \`CPU µs a delivery\` column is the server's user + system CPU over the timed deliveries ÷ their count, then the client's own.\n`);
}

/** A goal of the lmtp step on the warm servers, the cold ratio (a freshly started server's) beside it. */
function warmGoal(allMain: TaggedResult[], text: string, a: [string, string], b: [string, string], factor: number, warmText: string | undefined): Goal {
  return warmRateGoal(allMain, text, a, b, factor, warmText ? { warm: `after ${warmText} untimed deliveries`, cold: `the first ${warmText} deliveries into a freshly started server` } : undefined);
}

/**
 * The 64-process goal on the timed appends after the warm-up (both sides warmed alike), the cold
 * ratio (their warm-up appends: 64 freshly started processes against 64 fresh writers) beside it.
 */
function concurrentClientsGoal(allMain: TaggedResult[], warmText: string | undefined): Goal {
  return warmRateGoal(allMain, '64 client processes appending at once ≥ 70 % of 64 writers in one process (messages/s)', ['mailstore-client-64p', 'daemon'], ['mailstore-library-64w', 'daemon'], 0.7,
    warmText ? { warm: `each side after ${warmText} untimed appends, shared by its 64`, cold: `those first ${warmText} appends of 64 freshly started processes and writers` } : undefined);
}

/**
 * The floor of the 64-process goal, per round: the same 64 client processes against a server that
 * does no store work (floor-client-64p), as a fraction of the 64 in-process writers (the most of
 * the goal these processes can reach on this machine), and where the CPU of a message goes.
 */
export function concurrentClientsFloor(allMain: TaggedResult[]): string | undefined {
  const rounds = perRound(allMain, (inRound) => {
    const floor = find(inRound, 'floor-client-64p', 'daemon'), writers = find(inRound, 'mailstore-library-64w', 'daemon'), clients = find(inRound, 'mailstore-client-64p', 'daemon');
    const rf = floor && msgRate(floor), rw = writers && msgRate(writers), rc = clients && msgRate(clients);
    return floor && rf && rw && rc ? { reachable: rf / rw, ofFloor: rc / rf, floorClientUs: cpuOf(floor, 'client'), floorServerUs: cpuOf(floor, 'daemon'), clientUs: cpuOf(clients!, 'client'), daemonUs: cpuOf(clients!, 'daemon') } : undefined;
  });
  if (rounds.length === 0) return undefined;
  const m = (pick: (r: (typeof rounds)[number]) => number | undefined) => {
    const values = rounds.map(pick).filter((v): v is number => v !== undefined);
    return values.length ? median(values) : undefined;
  };
  const reachable = m((r) => r.reachable)!, ofFloor = m((r) => r.ofFloor)!;
  const us = (x: ReturnType<typeof m>) => (x ? `${num(x.median, 0)} µs` : '?');
  return `Floor: the same 64 client processes, messages and frames against a server that does no store work (floor-client-64p) reach ${num(reachable.median)}× the 64 in-process writers (${spreadText(reachable).slice(2)}), the most of the goal's 0.7× these processes can reach on this machine; mailstore-client-64p is ${num(ofFloor.median)}× that floor. CPU a timed message (median of the rounds): against the floor the 64 processes ${us(m((r) => r.floorClientUs))} and its server ${us(m((r) => r.floorServerUs))}; against mailstore serve the processes ${us(m((r) => r.clientUs))} and the daemon ${us(m((r) => r.daemonUs))} (2 cores give 2,000,000 µs a second).`;
}

const cpuOf = (r: BenchResult, who: 'client' | 'daemon') => (typeof r[`${who}_cpu_us_per_message`] === 'number' ? r[`${who}_cpu_us_per_message`] as number : undefined);
const DAEMON_CPU_COLUMN = { title: 'CPU µs a message: clients / server', value: (r: TaggedResult) => (typeof r.client_cpu_us_per_message === 'number' ? `${r.client_cpu_us_per_message} / ${r.daemon_cpu_us_per_message}` : '') };

/** Client p50 minus library p50 in each round, the verdict on their median. */
function clientLatencyGoal(allMain: TaggedResult[]): Goal {
  const text = 'socket client append p50 ≤ library append p50 + 0.3 ms';
  const warm = p50Difference(allMain, 'p50_ms');
  if (!warm) return { text, measured: '', pass: undefined };
  const cold = p50Difference(allMain, 'cold_p50_ms');
  const warmup = find(allMain, 'mailstore-client', 'daemon')?.warmup;
  if (!cold || typeof warmup !== 'number') return { text, ...warm };
  const n = warmup.toLocaleString('en-US');
  return { text: `${text}, warm (each after ${n} untimed appends)`, measured: `${warm.measured}; cold, their first ${n} appends, same run: ${cold.measured}`, pass: warm.pass };
}

/** Client p50 minus library p50 (`field`: the timed or the warm-up appends) per round, on their median. */
function p50Difference(allMain: TaggedResult[], field: 'p50_ms' | 'cold_p50_ms'): { measured: string; pass: boolean } | undefined {
  const pairs = perRound(allMain, (inRound) => {
    const c = find(inRound, 'mailstore-client', 'daemon')?.[field], l = find(inRound, 'mailstore-library', 'daemon')?.[field];
    return typeof c === 'number' && typeof l === 'number' ? { extra: c - l, c, l } : undefined;
  });
  if (pairs.length === 0) return undefined;
  const m = median(pairs.map((p) => p.extra));
  const middle = pairs.reduce((best, p) => (Math.abs(p.extra - m.median) < Math.abs(best.extra - m.median) ? p : best));
  const sign = m.median < 0 ? '' : '+';
  return { measured: `${sign}${fixed(m.median, 3)} ms (client ${fixed(middle.c, 3)} vs library ${fixed(middle.l, 3)} ms${spreadText(m, ' ms')})`, pass: Math.round(m.median * 1000) <= 300 }; // to the µs: 1.5 - 1.2 is 0.30000000000000004
}

function rssSection(out: string[], push: (goal: Goal) => void, main: TaggedResult[]): void {
  const run = main.find((r) => r.peer === 'mailstore' && r.measurement === 'lmtp-rss');
  out.push('### The daemon\'s RSS over many deliveries\n');
  if (!run) { out.push('_not measured in this run_\n'); return; }
  if (run.error) {
    out.push(`**could not run**: ${run.error}\n`);
    push({ text: 'the daemon\'s RSS stays flat over many deliveries', measured: '', pass: undefined });
    return;
  }
  const samples = (run.rss_samples as RssSampleRow[] | undefined) ?? [];
  const snapshots = (run.snapshots_s as [number, number][] | undefined) ?? [];
  const g = rssGrowth(samples, snapshots[0]?.[1]);
  const n = run.messages ?? 0;
  out.push(`${n.toLocaleString('en-US')} deliveries over ${run.connections ?? '?'} LMTP connections in ${fixed(run.seconds ?? 0, 1)} s (${fixed(msgRate(run) ?? 0, 0)} messages/s), each with a Received: header of its own (no two alike, so nothing deduplicates), the corpus's smaller messages over and over. VmRSS of the \`mailstore serve\` process, sampled every 250 ms (RssAnon in brackets):\n`);
  const step = Math.ceil(samples.length / 12);
  const shown = samples.filter((_, i) => i % step === 0 || i === samples.length - 1);
  const end = samples[samples.length - 1]?.[0] ?? 0;
  out.push(`| s | ${shown.map(([t]) => fixed(t, end < 100 ? 1 : 0)).join(' | ')} |`);
  out.push(`|---|${shown.map(() => '---').join('|')}|`);
  out.push(`| MiB | ${shown.map(([, rss, anon]) => `${fixed(rss / MiB, 0)} (${fixed(anon / MiB, 0)})`).join(' | ')} |\n`);
  if (snapshots.length > 0) out.push(`Automatic snapshots (index walks beside the deliveries) ran at ${snapshots.map(([a, b]) => `${fixed(a, 0)}–${fixed(b, 0)} s`).join(', ')}. Warm-up is the first 10 % of the run and at least up to the end of the first snapshot: the heap, LevelDB's caches and glibc's malloc arenas grow to their working set over the first ~10k deliveries, and the first snapshot raises the high-water mark that glibc keeps (later ones do not raise it again; at 1M the first ends within the first 10 %).\n`);
  const scale = n >= 1_000_000 ? '1M deliveries' : `${n.toLocaleString('en-US')} deliveries; 1M only with --scale`;
  const window = g && g.from > 0.1 ? `${fixed(g.from * 100, 0)}–${fixed(g.from * 100 + 20, 0)} % (after the first snapshot)` : '10–30 %';
  push({
    text: `the daemon's RSS stays flat over many deliveries (${scale}): its last 10 % ≤ ${RSS_FLAT_GROWTH_MAX}× its size after warm-up`,
    measured: g ? `${fixed(g.early / MiB, 0)} MiB at ${window} → ${fixed(g.late / MiB, 0)} MiB (${fixed(g.growth, 3)}×), peak ${fixed(g.peak / MiB, 0)} MiB` : `${samples.length} samples: too few, or the run ended too soon after its first snapshot`,
    pass: g ? g.growth <= RSS_FLAT_GROWTH_MAX : undefined,
  });
}
