// `mailstore bench --corpus PATH`: the side-by-side of `npm run bench` on a user's own mail, from
// the installed package. The corpus is prepared once (corpus.ts, resumable, kept in OUT/prepared
// for the next run), the peers run where installed (a missing one is named before anything else
// runs), every mailstore measurement in its own process, the goal steps in --rounds rounds
// alternating with the peers; OUT gets report.md, results.json and the charts.
import os from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MailstoreError } from '../errors.js';
import type { MailFormat } from '../formats/detect.js';
import { nodeFileSystem } from '../fs/node-fs.js';
import { benchLimits } from '../limits.js';
import { progress, round } from './common.js';
import { prepareCorpus, type PrepareOptions, type PreparedCorpus } from './corpus.js';
import { Bench, LATER_ROUND_PEERS, LATER_ROUND_PEER_ENV, PACKAGE_ROOT, inRounds, machine, peers, storeMeasurements, writerMeasurements, type Step } from './engine.js';
import { PEER_NEEDS, ensurePeers, missingPeersText, needsOf, peerEnvironment, type PeerEnvironment, type PeerStatus } from './peer-check.js';
import { makeDirectories, readText, removeTree } from './files.js';
import type { CorpusInfo, RunData } from './report.js';
import { writeRunReport, type WrittenReport } from './write.js';

export const PEER_NAMES = ['dovecot', 'cyrus', 'git'] as const;

export interface CorpusBenchOptions {
  corpus: string;
  out: string;
  /** Peers to run beside mailstore (the b3sum/cat/dd floor comes with any); empty: none. */
  peers: string[];
  /**
   * The peers were named on the command line (not the default list): a missing one stops the run
   * before anything is prepared (NOT_FOUND); with the default list it is named at once and left out.
   */
  peersNamed?: boolean;
  /** Rounds of the goal steps, peers and mailstore alternating (round 1 measures everything). */
  rounds: number;
  /** Where the peers are checked (default: this machine's setup.sh --check); for tests. */
  peerEnvironment?: PeerEnvironment;
  quick: boolean;
  format?: MailFormat;
  /** Only the first N messages of the corpus. */
  messages?: number;
  /** Messages delivered one at a time (mailstore, Dovecot and Cyrus alike). */
  deliver?: number;
  /** The command line, for the report. */
  argv: string[];
  /** The corpus preparation starts (with the messages it expects, when known) and goes on: a progress meter. */
  onPrepareStart?: PrepareOptions['onStart'];
  onPrepared?: PrepareOptions['onMessage'];
  /** The preparation is over (the meter is erased before the measurements' lines). */
  onPrepareDone?: () => void;
  onSkip?: PrepareOptions['onSkip'];
  shouldStop?: () => boolean;
}

export interface CorpusBenchResult {
  /** Stopped during preparation (Ctrl-C): nothing measured; the same command resumes it. */
  interrupted: boolean;
  prepared: PreparedCorpus;
  report?: WrittenReport;
  data?: RunData;
}

async function packageVersion(): Promise<string> {
  const text = await readText(join(PACKAGE_ROOT, 'package.json'));
  return text ? (JSON.parse(text) as { version?: string }).version ?? '?' : '?';
}

export async function runCorpusBench(options: CorpusBenchOptions): Promise<CorpusBenchResult> {
  const out = resolve(options.out);
  const source = resolve(options.corpus);
  const present = checkPeers(options);
  await makeDirectories(out);
  const started = new Date();
  const info = machine(out, `mailstore ${await packageVersion()} (${PACKAGE_ROOT})`);
  progress(`mailstore bench --corpus ${source} (${options.quick ? 'quick' : 'full'}) on ${info.cores} cores, ${Math.round(info.memoryBytes / 2 ** 30)} GiB, load ${info.loadStart.join(' ')}`);
  const prepared = await prepareCorpus(source, join(out, 'prepared'), {
    format: options.format, messagesMax: options.messages, onStart: options.onPrepareStart, onMessage: options.onPrepared, onSkip: options.onSkip, shouldStop: options.shouldStop,
  });
  options.onPrepareDone?.();
  if (!prepared.complete) return { interrupted: true, prepared };
  const how = prepared.reused ? 'prepared by an earlier run, reused' : prepared.resumedAt ? `resumed at message ${prepared.resumedAt}` : 'prepared now';
  progress(`corpus: ${prepared.messages} messages, ${prepared.bytes} bytes (${prepared.format}; ${how}) in ${prepared.work}`);

  const deliver = Math.min(prepared.messages, options.deliver ?? (options.quick ? 50 : 500));
  const bench = new Bench(
    { scale: false, peers: options.peers.length > 0, deliver, deliverCli: 0, concurrent: 0, profile: false, recoverKillAfterMax: benchLimits.recoverKillAfterMax },
    {
      cli: fileURLToPath(new URL('../cli/main.cjs', import.meta.url)),
      // '../bench/measure', not './measure': the CLI's bundled chunks run from dist/src/cli/
      measure: fileURLToPath(new URL('../bench/measure', import.meta.url)),
      peers: join(PACKAGE_ROOT, 'tools/bench/peers'),
      scratch: join(out, 'work'),
      display: (arg) => (arg.startsWith(out) ? join('OUT', relative(out, arg)) : arg.startsWith(PACKAGE_ROOT) ? relative(PACKAGE_ROOT, arg) : arg),
    },
  );
  const corpus: CorpusInfo = {
    name: 'main', source: prepared.maildir, work: prepared.work, list: prepared.list, mbox: prepared.mbox,
    messages: prepared.messages, bytes: prepared.bytes, mboxBytes: prepared.mboxBytes, duplicates: prepared.duplicates,
    how: `${source} (${prepared.format}${options.messages ? `, first ${options.messages} messages` : ''}${prepared.skipped ? `, ${prepared.skipped} entries skipped` : ''}${prepared.duplicatesCapped ? '; duplicates counted among the first 2M distinct' : ''})`,
  };
  bench.corpora.push(corpus);
  if (options.peers.length === 0) bench.add('main', { peer: 'peers', measurement: '*', error: 'not run: --no-peers' });
  for (const [peer, statuses] of present.missing) {
    bench.add('main', { peer, measurement: '*', error: `not installed (${statuses.map((s) => `${s.name}: ${s.detail}`).join('; ')}); install with: sudo ${join(PACKAGE_ROOT, 'tools/bench/peers/setup.sh')}` });
  }
  await measure(bench, corpus, out, { ...options, corpus: source, peers: present.peers }, prepared);
  info.loadEnd = os.loadavg().map((l) => round(l, 2));
  const data: RunData = {
    started: started.toISOString(), finished: new Date().toISOString(), mode: options.quick ? 'quick' : 'full', scale: false,
    argv: options.argv, machine: info, corpora: bench.corpora, results: bench.results, commands: bench.commands,
    settings: { rounds: options.rounds, deliver }, kind: 'corpus', generator: `\`mailstore ${options.argv.join(' ')}\``,
  };
  const report = await writeRunReport(data, out);
  await removeTree(join(out, 'work'), nodeFileSystem);
  await removePeerStores(prepared.work);
  progress(`report: ${report.markdown}; raw results: ${report.json}; charts: ${report.charts.length}`);
  return { interrupted: false, prepared, report, data };
}

/**
 * The peers asked for, checked before the corpus is prepared (which can take an hour): a missing
 * peer the user named stops the run here; of the default list, the missing ones are named now and
 * left out (the report lists them), rather than found missing at the end. Nothing is installed:
 * this is the admin's machine (setup.sh says how).
 */
export function checkPeers(options: Pick<CorpusBenchOptions, 'peers' | 'peersNamed' | 'peerEnvironment'>): { peers: string[]; missing: Map<string, PeerStatus[]> } {
  const missing = new Map<string, PeerStatus[]>();
  if (options.peers.length === 0) return { peers: [], missing };
  const env = options.peerEnvironment ?? peerEnvironment(join(PACKAGE_ROOT, 'tools/bench/peers'));
  // the floor (b3sum) comes with any peer
  const check = ensurePeers(env, { install: false, wanted: needsOf(['floor', ...options.peers]) });
  if (check.missing.length === 0) return { peers: options.peers, missing };
  const setup = join(PACKAGE_ROOT, 'tools/bench/peers/setup.sh');
  if (options.peersNamed) throw new MailstoreError('NOT_FOUND', `${missingPeersText(check, env, setup, 'leave them out of --peers (or --no-peers)')}`);
  for (const peer of ['floor', ...options.peers]) {
    const gone = check.missing.filter((s) => (PEER_NEEDS[peer] ?? [peer]).includes(s.name));
    if (gone.length) missing.set(peer, gone);
  }
  progress(`${missingPeersText(check, env, setup, '--peers to choose')}; measuring without ${[...missing.keys()].join(', ')}`);
  return { peers: options.peers.filter((p) => !missing.has(p)), missing };
}

/**
 * The peers leave their stores beside the prepared corpus (run.sh's WORKDIR), each as big as the
 * corpus: removed once their figures are in results.json; the prepared corpus itself is kept.
 */
async function removePeerStores(work: string): Promise<void> {
  for (const name of await nodeFileSystem.readdir(work)) {
    if (name !== 'maildir' && name !== 'corpus') await removeTree(join(work, name));
  }
}

/** The steps on a user's corpus: those of `npm run bench` that measure the corpus (not ACL, scale, spam). */
async function measure(bench: Bench, corpus: CorpusInfo, out: string, options: CorpusBenchOptions, prepared: PreparedCorpus): Promise<void> {
  const work = join(out, 'work');
  await removeTree(work);
  await makeDirectories(work);
  const steps = new Set<Step>(['hash', 'import', 'import-cli', 'read', 'scrub', 'space', 'rebuild', 'deliver']);
  if (corpus.messages >= benchLimits.recoverMessagesMin) steps.add('recover');
  else bench.add('main', { peer: 'mailstore', measurement: 'recover', error: `not run: the corpus has ${corpus.messages} messages, fewer than the ${benchLimits.recoverMessagesMin} an import needs to be killed half way` });
  const wanted = (step: Step) => steps.has(step);
  // the CLI import reads the corpus itself, as an admin would; with --messages it would read more than the rest, so the mbox then
  const cliImportSource = options.messages === undefined
    ? { path: options.corpus, ...(options.format ? { format: options.format } : {}), note: `reads the corpus itself (${prepared.format}), not the prepared mbox` }
    : undefined;
  await inRounds(bench, options.rounds, async (later) => {
    // peers first, then mailstore; after round 1 only the peers and formats a goal compares with
    const which = later ? options.peers.filter((p) => LATER_ROUND_PEERS.includes(p)) : ['floor', ...options.peers];
    if (which.length > 0) {
      // the peers' own directories sit beside the prepared corpus; run.sh wipes each before use
      const env: NodeJS.ProcessEnv = { PEERS_DELIVER_LIMIT: String(bench.settings.deliver), ...(options.quick ? { PEERS_FORMATS: 'mdbox' } : {}), ...(later ? LATER_ROUND_PEER_ENV : {}) };
      await bench.guarded('main', () => peers(bench, corpus, which, env));
    }
    await bench.guarded('main', () => storeMeasurements(bench, corpus, work, { wanted, cliImportSource }));
    await bench.guarded('main', () => writerMeasurements(bench, corpus, work, wanted));
  });
}
