// The side-by-side measurements themselves, shared by `npm run bench` (tools/bench/run.ts, its
// generated corpus) and `mailstore bench --corpus` (any corpus, from the installed package): the
// peers through tools/bench/peers/run.sh, every mailstore measurement in its own node process
// (measure/*.ts, one JSON line per result, so peak RSS is its own), all tagged with their corpus.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeFileSystem as fs } from '../fs/node-fs.js';
import { progress, round, type BenchResult } from './common.js';
import { oneSyncInlineBytes } from './report-onesync.js';
import { exists, makeDirectories, readText, removeTree } from './files.js';
import type { CorpusInfo, MachineInfo, TaggedResult } from './report.js';

/** The steps a run may be limited to (`--only`); the generated-corpus run has a few more of its own. */
export const STEPS = ['peers', 'hash', 'import', 'import-cli', 'read', 'scrub', 'space', 'rebuild', 'recover', 'rebuild-snapshot', 'deliver', 'deliver-cli', 'concurrent', 'acl', 'spam', 'scale', 'lmtp', 'daemon', 'replication', 'backup', 'tier', 'churn'] as const;
export type Step = (typeof STEPS)[number];

/**
 * The steps behind a goal row, measured again in every round after the first (issue 16: a goal's
 * verdict is the median of alternating rounds); the others, tables only, run in round 1.
 */
export const REPEATED: ReadonlySet<Step> = new Set<Step>(['peers', 'import', 'read', 'scrub', 'rebuild', 'deliver', 'deliver-cli', 'concurrent', 'acl', 'spam', 'lmtp', 'daemon', 'replication', 'backup', 'churn', 'tier']);

/** The package's root (dist/src/bench/engine.js is three levels below it). */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');

export interface BenchPaths {
  /** The CLI measured (dist/src/cli/main.cjs, package.json's bin, or its snapshot). */
  cli: string;
  /** The directory of the measure/*.js programs. */
  measure: string;
  /** tools/bench/peers of the package. */
  peers: string;
  /** Scratch: /usr/bin/time output, CPU profiles. */
  scratch: string;
  /** How a path is shown in the report's list of commands (relative to something the reader knows). */
  display(arg: string): string;
}

export interface BenchSettings {
  /** Only these steps (undefined: every step but scale unless scale). */
  only?: Set<Step>;
  scale: boolean;
  peers: boolean;
  deliver: number;
  /** Untimed deliveries before the timed ones of the warm rows (deliveryWarmup; default: deliver). */
  warmup?: number;
  deliverCli: number;
  concurrent: number;
  profile: boolean;
  /** The crash measurement kills the import after half the corpus, at most this many messages (a huge corpus). */
  recoverKillAfterMax?: number;
}

/**
 * The untimed deliveries a warm row gets before its timed ones, in the same process: each server
 * of the lmtp step, the daemon step's writers, and the deliver step's one-sync rows and their
 * floors (a mail server's delivery runs in a long-lived process; the first thousands of deliveries
 * into a fresh one mostly measure V8 compiling its code: BENCHMARKS.md "LMTP one delivery's
 * timeline" and "One-sync, session 52"). `--warmup N`, by default as many as the step times.
 */
export function deliveryWarmup(s: { deliver: number; warmup?: number }): number {
  return s.warmup ?? s.deliver;
}

export interface Ran { code: number; stdout: string; stderr: string; seconds: number }

export function run(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; stderr?: 'inherit' | 'pipe' } = {}): Promise<Ran> {
  return new Promise((resolvePromise, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', options.stderr ?? 'inherit'] });
    let stdout = '', stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk; });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code: code ?? -1, stdout, stderr, seconds: (performance.now() - started) / 1000 }));
  });
}

export function jsonLines(text: string): BenchResult[] {
  const out: BenchResult[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try { out.push(JSON.parse(line) as BenchResult); } catch { /* a log line that happens to start with { */ }
  }
  return out;
}

export function sh(command: string): string {
  const r = spawnSync('bash', ['-c', command], { encoding: 'utf8' });
  return (r.stdout ?? '').trim();
}

/** One run's results, commands and corpora, and how to run a measurement. */
export class Bench {
  readonly results: TaggedResult[] = [];
  readonly commands: string[] = [];
  readonly corpora: CorpusInfo[] = [];
  /** The round being measured: round 1 measures everything, later rounds only REPEATED steps. */
  round = 1;
  private readonly hasTime = spawnSync('/usr/bin/time', ['-f', '%e', 'true']).status === 0;

  constructor(readonly settings: BenchSettings, readonly paths: BenchPaths) {}

  wanted(step: Step): boolean {
    if (!this.inRound(step)) return false;
    if (this.settings.only) return this.settings.only.has(step);
    return step !== 'scale' || this.settings.scale;
  }

  /** Whether `step` runs in this round at all (round 1: every step; later: the goal steps). */
  inRound(step: Step): boolean {
    return this.round === 1 || REPEATED.has(step);
  }

  add(corpus: string, result: BenchResult): void {
    this.results.push({ corpus, ...result, round: this.round, at: new Date().toISOString() });
    const what = result.error ? `ERROR ${result.error}` : describe(result);
    progress(`${corpus} ${result.peer} ${result.measurement}${this.round > 1 ? ` (round ${this.round})` : ''}: ${what}`);
  }

  /** Records a command for the report's list; later rounds run the same commands again. */
  command(shown: string): void {
    if (this.round === 1) this.commands.push(shown);
  }

  /** Runs one measurement program (measure/NAME.js, or a path to a .js) in its own node process and records its lines. */
  async child(corpus: string, module: string, args: string[], expect: { peer: string; measurement: string }, rename?: (r: BenchResult) => BenchResult): Promise<BenchResult[]> {
    const script = module.endsWith('.js') ? module : join(this.paths.measure, `${module}.js`);
    const nodeArgs = this.settings.profile ? ['--cpu-prof', '--cpu-prof-dir', join(this.paths.scratch, 'profiles')] : [];
    const shown = `node ${this.paths.display(script)} ${args.map((a) => this.paths.display(a)).join(' ')}`;
    this.command(shown);
    // as an installed mailstore runs (the package's /usr/bin/mailstore and its unit set it: two
    // glibc malloc arenas); the peers these programs start are single-threaded or not glibc's
    const ran = await run(process.execPath, [...nodeArgs, script, ...args], { env: { MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '2' } });
    const lines = jsonLines(ran.stdout);
    if (lines.length === 0) lines.push({ ...expect, error: `${module} exited with status ${ran.code} and printed no result` });
    for (const line of lines) this.add(corpus, (rename ?? ((r) => r))({ ...line, command: line.command ?? shown }));
    return lines;
  }

  /** Runs a command under /usr/bin/time when there is one: wall seconds and the peak RSS of its largest process (0 without). */
  async timed(command: string[], env?: NodeJS.ProcessEnv): Promise<{ ok: boolean; seconds: number; rss: number; stdout: string; stderr: string }> {
    if (!this.hasTime) {
      const ran = await run(command[0]!, command.slice(1), { env, stderr: 'pipe' });
      return { ok: ran.code === 0, seconds: round(ran.seconds, 4), rss: 0, stdout: ran.stdout, stderr: ran.stderr };
    }
    await makeDirectories(this.paths.scratch);
    const timeFile = join(this.paths.scratch, 'time.out');
    const ran = await run('/usr/bin/time', ['-f', '%e %M', '-o', timeFile, ...command], { env, stderr: 'pipe' });
    const [, kib] = ((await readText(timeFile)) ?? '0 0').trim().split(/\s+/).map(Number);
    // /usr/bin/time has 10 ms resolution; our own clock is finer
    return { ok: ran.code === 0, seconds: round(ran.seconds, 4), rss: (kib ?? 0) * 1024, stdout: ran.stdout, stderr: ran.stderr };
  }

  /** Runs `fn`; an exception becomes an error line for `what` (the rest of the run goes on). */
  async guarded(what: string, fn: () => Promise<void>): Promise<void> {
    try { await fn(); } catch (error) {
      this.add(what, { peer: 'bench', measurement: what, error: `the harness failed here: ${error instanceof Error ? error.stack ?? error.message : String(error)}` });
    }
  }
}

/**
 * Runs `measureRound` `rounds` times with bench.round set: each round runs the peers and then
 * mailstore, so the two alternate and a slow minute of a shared machine falls on one round of
 * one side, not on every figure of it. Round 1 measures everything, later rounds (`later`) only
 * the goal steps (REPEATED); bench.round is 1 again afterwards (the scale steps run once).
 */
export async function inRounds(bench: Bench, rounds: number, measureRound: (later: boolean) => Promise<void>): Promise<void> {
  try {
    for (bench.round = 1; bench.round <= rounds; bench.round++) {
      if (bench.round > 1) progress(`round ${bench.round} of ${rounds}: the goal measurements again`);
      await measureRound(bench.round > 1);
    }
  } finally {
    bench.round = 1;
  }
}

/**
 * The peers and their formats after round 1: only those a goal row compares with (Dovecot mdbox
 * import and read, Cyrus delivery, scrub and rebuild), not the table-only ones (sdbox, Maildir, git).
 */
export const LATER_ROUND_PEERS = ['dovecot', 'cyrus'];
export const LATER_ROUND_PEER_ENV: NodeJS.ProcessEnv = { PEERS_FORMATS: 'mdbox', PEERS_DELIVER_FORMATS: '' };

function describe(r: BenchResult): string {
  const parts: string[] = [];
  if (r.seconds !== undefined) parts.push(`${r.seconds} s`);
  if (r.messages && r.seconds) parts.push(`${Math.round(r.messages / r.seconds)} msg/s`);
  if (r.bytes && r.seconds) parts.push(`${round(r.bytes / r.seconds / 1e6, 1)} MB/s`);
  if (r.p50_us !== undefined) parts.push(`p50 ${r.p50_us} µs p99 ${r.p99_us} µs`);
  if (r.p50_ms !== undefined) parts.push(`p50 ${r.p50_ms} ms`);
  if (typeof r.ratio === 'number') parts.push(`ratio ${r.ratio}`);
  if (r.peak_rss_bytes) parts.push(`RSS ${Math.round(r.peak_rss_bytes / 1048576)} MiB`);
  return parts.join(', ');
}

/** The machine a run measured: cores, memory, OS, the disk under `dir`, node, the code measured. */
export function machine(dir: string, code: string): MachineInfo {
  const cpus = os.cpus();
  return {
    cores: cpus.length, cpuModel: cpus[0]?.model ?? '?', memoryBytes: os.totalmem(), kernel: sh('uname -r'), os: sh('. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"'),
    disk: sh(`df -hT ${JSON.stringify(dir)} | tail -n 1`), diskModel: sh(`lsblk -dno NAME,ROTA,SIZE,MODEL 2>/dev/null | grep -v '^zram' | awk '{ $2 = ($2 == 1 ? "rotational" : "non-rotational"); print }' | paste -sd ';'`),
    node: process.version, loadStart: os.loadavg().map((l) => round(l, 2)), loadEnd: [],
    hostname: os.hostname(), commit: code,
  };
}

/** A corpus prepared for the peers (WORK/corpus/stats.env, list.txt, corpus.mbox) as the report describes it. */
export async function corpusInfo(name: string, source: string, work: string, how: string, summary: Record<string, number> | undefined): Promise<CorpusInfo> {
  const env = (await readText(join(work, 'corpus', 'stats.env'))) ?? '';
  const value = (key: string) => Number(new RegExp(`^${key}=(\\d+)`, 'm').exec(env)?.[1] ?? 0);
  const list = join(work, 'corpus', 'list.txt');
  const duplicates = summary?.duplicates ?? (await countDuplicates(list));
  return {
    name, source, work, list, mbox: join(work, 'corpus', 'corpus.mbox'), messages: value('MESSAGES'), bytes: value('BYTES'), mboxBytes: value('MBOX_BYTES'),
    duplicates, how, summary,
  };
}

async function countDuplicates(list: string): Promise<number> {
  const seen = new Set<string>();
  let duplicates = 0;
  for (const file of ((await readText(list)) ?? '').split('\n').filter(Boolean)) {
    const digest = createHash('sha256').update(await fs.readFile(file)).digest('hex');
    if (seen.has(digest)) duplicates++; else seen.add(digest);
  }
  return duplicates;
}

/** tools/bench/peers/run.sh on the corpus: every line it prints, errors too. */
export async function peers(bench: Bench, corpus: CorpusInfo, which: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const command = `tools/bench/peers/run.sh ${bench.paths.display(corpus.source)} ${bench.paths.display(corpus.work)} ${which.join(' ')}`;
  const knobs = Object.entries(env).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ');
  bench.command(`${knobs} ${command}`.trim());
  progress(`peers on ${corpus.name}${bench.round > 1 ? ` (round ${bench.round})` : ''}: ${which.join(' ')} (${knobs})`);
  const ran = await run('bash', [join(bench.paths.peers, 'run.sh'), corpus.source, corpus.work, ...which], { env });
  const lines = jsonLines(ran.stdout);
  if (lines.length === 0) bench.add(corpus.name, { peer: 'peers', measurement: '*', error: `run.sh exited ${ran.code} with no output` });
  for (const line of lines) bench.add(corpus.name, { ...line, command: `${command} (see tools/bench/README.md for the exact peer commands)` });
}

function du(path: string): { disk: number; apparent: number } {
  const disk = Number(sh(`du -sB1 ${JSON.stringify(path)} | cut -f1`));
  const apparent = Number(sh(`du -sb ${JSON.stringify(path)} | cut -f1`));
  return { disk, apparent };
}

/** Options of storeMeasurements beyond the steps: the CLI import may read the corpus's own source. */
export interface StoreMeasurementOptions {
  /** Steps wanted on this corpus (default: bench.wanted). */
  wanted?: (step: Step) => boolean;
  /** What `mailstore import` reads for the CLI import (default: the corpus's mbox). */
  cliImportSource?: { path: string; format?: string; note: string };
}

/** Import, read, scrub, space and rebuild on one corpus (the store from the import is reused). */
export async function storeMeasurements(bench: Bench, corpus: CorpusInfo, work: string, options: StoreMeasurementOptions = {}): Promise<void> {
  await makeDirectories(work);
  const store = join(work, 'store');
  const w = (step: Step) => bench.inRound(step) && (options.wanted ?? ((s: Step) => bench.wanted(s)))(step);
  const needStore = (['read', 'scrub', 'space', 'rebuild'] as const).some((s) => w(s));
  if (w('hash') && corpus.list) await bench.child(corpus.name, 'hash', ['--list', corpus.list], { peer: 'mailstore-hash', measurement: 'hash' });
  if (w('import') || (needStore && !(await exists(join(store, 'STORE'))))) {
    await removeTree(store);
    await bench.child(corpus.name, 'import', ['--store', store, '--mbox', corpus.mbox], { peer: 'mailstore', measurement: 'import' });
  }
  if (w('import-cli')) await cliImport(bench, corpus, work, options.cliImportSource);
  if (!(await exists(join(store, 'STORE')))) return;
  if (w('read')) {
    await bench.child(corpus.name, 'read', ['--store', store], { peer: 'mailstore', measurement: 'read' });
    // every round beside the read: the least a verified read of this design does, its goal rows' floor
    await bench.child(corpus.name, 'read-floor', ['--store', store], { peer: 'floor-read', measurement: 'read' });
  }
  if (w('scrub')) await scrubMeasurements(bench, corpus, store);
  if (w('space')) await spaceMeasurement(bench, corpus, store);
  if (w('rebuild')) await bench.child(corpus.name, 'recover', ['--rebuild', '--store', store], { peer: 'mailstore', measurement: 'rebuild' });
}

/** `mailstore import` as a process (node start included), into a store of its own. */
async function cliImport(bench: Bench, corpus: CorpusInfo, work: string, source?: StoreMeasurementOptions['cliImportSource']): Promise<void> {
  const cli = bench.paths.cli;
  const cliStore = join(work, 'store-cli');
  await removeTree(cliStore);
  await run(process.execPath, [cli, '--store', cliStore, 'init'], { stderr: 'pipe' });
  const command = ['node', cli, '--store', cliStore, 'import', source?.path ?? corpus.mbox, '--mailbox', 'INBOX', ...(source?.format ? ['--format', source.format] : []), '--json'];
  const shown = command.map((a) => bench.paths.display(a)).join(' ');
  bench.command(shown);
  const t = await bench.timed(command);
  const summary = t.ok || t.stdout.startsWith('{') ? tryJson<{ imported: number; bytes: number; skipped?: number }>(t.stdout) : undefined;
  const note = `\`mailstore import\` process, wall time incl. node start${t.rss ? ' (/usr/bin/time)' : ''}${source ? `; ${source.note}` : ''}${summary?.skipped ? `; ${summary.skipped} skipped (see its output)` : ''}`;
  bench.add(corpus.name, summary
    ? { peer: 'mailstore-cli', measurement: 'import', messages: summary.imported, bytes: summary.bytes, seconds: t.seconds, peak_rss_bytes: t.rss || undefined, command: shown, note }
    : { peer: 'mailstore-cli', measurement: 'import', error: `mailstore import failed: ${t.stderr.trim().split('\n').pop()}` });
  await removeTree(cliStore);
}

function tryJson<T>(text: string): T | undefined {
  try { return JSON.parse(text) as T; } catch { return undefined; }
}

/** Library scrub, CLI scrub, and the floor over the very bytes mailstore keeps: its pack files. */
async function scrubMeasurements(bench: Bench, corpus: CorpusInfo, store: string): Promise<void> {
  await bench.child(corpus.name, 'scrub', ['--store', store], { peer: 'mailstore', measurement: 'scrub' });
  // every round beside the library scrub: the per-message hashing floor its goal row is read against
  await bench.child(corpus.name, 'scrub-floor', ['--store', store], { peer: 'floor-blake3-blobs', measurement: 'scrub' });
  // the CLI scrub is a table row, no goal's: round 1 only; the b3sum floors below pair with the library scrub
  if (bench.round === 1) await cliScrub(bench, corpus, store);
  await packFloors(bench, corpus, store);
}

async function cliScrub(bench: Bench, corpus: CorpusInfo, store: string): Promise<void> {
  const command = ['node', bench.paths.cli, '--store', store, 'scrub', '--json'];
  const shown = command.map((a) => bench.paths.display(a)).join(' ');
  bench.command(shown);
  const t = await bench.timed(command);
  const bytes = t.ok ? tryJson<{ summary: { bytesVerified: number } }>(t.stdout)?.summary.bytesVerified : undefined;
  bench.add(corpus.name, t.ok
    ? { peer: 'mailstore-cli', measurement: 'scrub', messages: corpus.messages, bytes, seconds: t.seconds, peak_rss_bytes: t.rss || undefined, command: shown, note: `\`mailstore scrub\` process, wall time incl. node start and store open${t.rss ? ' (/usr/bin/time)' : ''}` }
    : { peer: 'mailstore-cli', measurement: 'scrub', error: `mailstore scrub exited non-zero: ${t.stderr.trim().split('\n').pop()}` });
}

/** The floor over the very bytes mailstore keeps: b3sum and cat over its pack files. */
async function packFloors(bench: Bench, corpus: CorpusInfo, store: string): Promise<void> {
  const packs = (await fs.readdir(join(store, 'packs'))).filter((f) => !f.startsWith('.')).map((f) => join(store, 'packs', f));
  let packBytes = 0;
  for (const p of packs) packBytes += (await fs.stat(p)).size;
  for (const [peer, tool] of [['b3sum-packs', ['b3sum']], ['b3sum-packs-1t', ['b3sum', '--num-threads', '1']], ['cat-packs', ['bash', '-c', 'cat "$@" > /dev/null', 'cat']]] as const) {
    // best of 3: these runs are short, and one stall on a shared machine would decide the ratio
    const tries = [await bench.timed([...tool, ...packs]), await bench.timed([...tool, ...packs]), await bench.timed([...tool, ...packs])];
    const t2 = tries.find((x) => !x.ok) ?? tries.reduce((a, b) => (b.seconds < a.seconds ? b : a));
    bench.add(corpus.name, t2.ok
      ? { peer, measurement: 'scrub', messages: corpus.messages, bytes: packBytes, seconds: t2.seconds, command: `${peer === 'cat-packs' ? 'cat' : tool.join(' ')} STORE/packs/*${peer === 'cat-packs' ? ' > /dev/null' : ''}`, note: `${peer === 'cat-packs' ? 'cat > /dev/null' : tool.join(' ')} over mailstore's ${packs.length} pack file(s), ${packBytes} bytes; best of 3 (${tries.map((x) => x.seconds).join(', ')} s); warm page cache` }
      : { peer, measurement: 'scrub', error: `${tool[0]} failed: ${t2.stderr.trim() || 'not installed?'}` });
  }
}

async function spaceMeasurement(bench: Bench, corpus: CorpusInfo, store: string): Promise<void> {
  const ran = await run(process.execPath, [bench.paths.cli, '--store', store, 'stats', '--json'], { stderr: 'pipe' });
  bench.command(`node ${bench.paths.display(bench.paths.cli)} --store STORE stats --json; du -sB1 STORE; du -sB1 STORE/{packs,journal,index}`);
  if (ran.code !== 0) {
    bench.add(corpus.name, { peer: 'mailstore', measurement: 'space', error: `stats failed: ${ran.stderr.trim()}` });
    return;
  }
  const stats = JSON.parse(ran.stdout) as Record<string, number>;
  const total = du(store);
  const parts: Record<string, number> = {};
  for (const part of ['packs', 'journal', 'index']) parts[`${part}_disk_bytes`] = du(join(store, part)).disk;
  bench.add(corpus.name, {
    peer: 'mailstore', measurement: 'space', messages: stats.messages, bytes: corpus.bytes, disk_bytes: total.disk, apparent_bytes: total.apparent,
    ratio: round(total.disk / corpus.bytes, 4), dedup_ratio: round(stats.dedupRatio ?? 0, 4), blobs: stats.blobs, bytes_stored: stats.bytesStored, ...parts,
    note: `du of the whole store after import (packs ${parts.packs_disk_bytes}, journal ${parts.journal_disk_bytes}, index ${parts.index_disk_bytes} bytes); ` +
      `${stats.blobs} blobs for ${stats.messages} messages, dedup ratio ${round(stats.dedupRatio ?? 0, 3)} (stats --json)`,
  });
}

/** Crash recovery, one-at-a-time delivery (library and CLI), concurrent writers: each in a fresh store. */
export async function writerMeasurements(bench: Bench, corpus: CorpusInfo, work: string, wantedHere: (step: Step) => boolean = (s) => bench.wanted(s)): Promise<void> {
  const wanted = (step: Step) => bench.inRound(step) && wantedHere(step);
  const s = bench.settings;
  const cli = bench.paths.cli;
  const fresh = async (name: string) => { const dir = join(work, name); await removeTree(dir); return dir; };
  if (wanted('recover')) {
    const dir = await fresh('store-crash');
    await run(process.execPath, [cli, '--store', dir, 'init'], { stderr: 'pipe' });
    await bench.child(corpus.name, 'recover', ['--crash', '--store', dir, '--mbox', corpus.mbox, '--cli', cli, '--kill-after', String(Math.min(Math.floor(corpus.messages / 2), s.recoverKillAfterMax ?? Infinity))], { peer: 'mailstore', measurement: 'recover' });
    await removeTree(dir);
  }
  if (wanted('deliver') && corpus.list) {
    // one-sync delivery (report-onesync.ts): inline bodies off, then on, back to back in each round;
    // both, and the floors they are judged against, warm alike (the list's next messages untimed first)
    const warmup = String(deliveryWarmup(s));
    for (const [peer, inline] of [['mailstore-two-file', 0], ['mailstore-inline', oneSyncInlineBytes()]] as const) {
      const one = await fresh(`store-deliver-${peer}`);
      await bench.child(corpus.name, 'deliver', ['--store', one, '--list', corpus.list, '--messages', String(s.deliver), '--warmup', warmup, '--writers', '1', '--inline', String(inline), '--peer', peer], { peer, measurement: 'deliver' });
      await removeTree(one);
    }
    // cold, as the peers' deliveries it is compared with (their scripts start each server fresh)
    const dir = await fresh('store-deliver');
    await bench.child(corpus.name, 'deliver', ['--store', dir, '--list', corpus.list, '--messages', String(s.deliver), '--writers', '1'], { peer: 'mailstore', measurement: 'deliver' });
    await bench.child(corpus.name, 'sync-shapes', ['--dir', await fresh('sync-shapes'), '--list', corpus.list, '--messages', String(s.deliver), '--warmup', warmup, '--inline', String(oneSyncInlineBytes())], { peer: 'floor-sync', measurement: 'deliver' });
    await removeTree(dir);
  }
  if (wanted('deliver-cli') && corpus.list) {
    const dir = await fresh('store-deliver-cli');
    await bench.child(corpus.name, 'deliver', ['--store', dir, '--list', corpus.list, '--messages', String(s.deliverCli), '--cli', cli], { peer: 'mailstore-cli', measurement: 'deliver' });
    await removeTree(dir);
  }
  if (wanted('concurrent') && corpus.list) {
    for (const writers of [1, 16, 64]) {
      const dir = await fresh(`store-deliver-${writers}w`);
      // its own measurement name (and 1w for one writer), so it never mixes with the deliver table
      await bench.child(corpus.name, 'deliver', ['--store', dir, '--list', corpus.list, '--messages', String(s.concurrent), '--writers', String(writers)],
        { peer: `mailstore-${writers}w`, measurement: 'concurrent' }, (r) => ({ ...r, peer: `mailstore-${writers}w`, measurement: 'concurrent' }));
      await removeTree(dir);
    }
  }
}

/** The read-and-hash floor over an mbox: one-thread b3sum (best of 3). */
export async function mboxFloor(bench: Bench, corpus: CorpusInfo): Promise<void> {
  const command = ['b3sum', '--num-threads', '1', corpus.mbox];
  bench.command(`b3sum --num-threads 1 ${bench.paths.display(corpus.mbox)}`);
  const tries = [await bench.timed(command), await bench.timed(command), await bench.timed(command)];
  const best = tries.find((t) => !t.ok) ?? tries.reduce((a, b) => (b.seconds < a.seconds ? b : a));
  bench.add(corpus.name, best.ok
    ? { peer: 'b3sum-mbox-1t', measurement: 'scrub', messages: corpus.messages, bytes: corpus.mboxBytes, seconds: best.seconds, command: command.map((a) => bench.paths.display(a)).join(' '),
      note: `b3sum --num-threads 1 over the corpus mbox (${corpus.mboxBytes} bytes); best of 3 (${tries.map((t) => t.seconds).join(', ')} s); warm page cache` }
    : { peer: 'b3sum-mbox-1t', measurement: 'scrub', error: `b3sum failed: ${best.stderr.trim()}` });
}
