// The bench steps of issue 13 (the daemon), in the same run as the rest and on the same messages:
//   lmtp    LMTP delivery, one connection, one message at a time: mailstore serve --lmtp vs Cyrus
//           lmtpd vs Dovecot LMTP (mdbox), all through tools/bench/peers/lmtp-client.mjs; then 64
//           connections at once (mailstore), and their floor (measure/lmtp-floor.ts: the same
//           client at 1 and 64 connections against smtp-server answering 250 with no store); in
//           round 1 the daemon's RSS over many deliveries (--scale: 1,000,000). Each server, the 64-connection one too, first takes
//           deliveryWarmup(settings) untimed deliveries over the same connections (lmtp-client.mjs
//           --warmup; reported as its cold_* fields), so the timed ones measure a warm server.
//   daemon  the socket client's append against the library's: one writer each (p50, each after the
//           same deliveryWarmup untimed appends), and 64 client processes against 64 writers in one
//           process (messages/s, each side first given deliveryWarmup untimed appends, shared alike:
//           the same count per writer and per process, as the 64 LMTP connections), and the floor of the latter: the same
//           64 processes against a server that does no store work (floor-client-64p).
// Each round runs the peers first, then mailstore (engine.ts inRounds), like the other goal steps.
import { join } from 'node:path';
import { nodeFileSystem as fs } from '../fs/node-fs.js';
import { progress, type BenchResult } from './common.js';
import { deliveryWarmup, jsonLines, run, type Bench } from './engine.js';
import { removeTree, writeText } from './files.js';
import type { CorpusInfo } from './report.js';

/** The connections (and client processes, and in-process writers) of the concurrent rows. */
export const LMTP_CONNECTIONS = 64;
/** Deliveries of the RSS run under --scale (issue 13: "flat over 1M deliveries"). */
export const RSS_DELIVERIES_SCALE = 1_000_000;
/**
 * Deliveries of the RSS run by default: past the daemon's first automatic snapshot (~54k of these
 * messages fill limits.snapshotEveryBytes of journal) with room after it for the after-warm-up
 * window and the last 10 % (report-lmtp.ts rssGrowth); ~75 s on a quiet machine.
 */
export const RSS_DELIVERIES_DEFAULT = 150_000;
/** The RSS run cycles through the corpus's smaller messages (at most this many, each at most RSS_MESSAGE_BYTES_MAX)... */
const RSS_MESSAGES_MAX = 2000;
/** ...so that 1M deliveries, each made unique by its Received: header (no dedup), stay a few GB on disk. */
const RSS_MESSAGE_BYTES_MAX = 8192;

export async function lmtpMeasurements(bench: Bench, corpus: CorpusInfo, work: string): Promise<void> {
  if (!corpus.list) return;
  if (bench.wanted('lmtp')) await lmtpStep(bench, corpus, work);
  if (bench.wanted('daemon')) await daemonStep(bench, corpus, work);
}

async function lmtpStep(bench: Bench, corpus: CorpusInfo, work: string): Promise<void> {
  const s = bench.settings;
  const warmup = deliveryWarmup(s);
  if (s.peers) await lmtpPeers(bench, corpus, s.deliver, warmup);
  const client = join(bench.paths.peers, 'lmtp-client.mjs');
  const fresh = async (name: string) => { const dir = join(work, name); await removeTree(dir); return dir; };
  const common = (store: string) => ['--cli', bench.paths.cli, '--client', client, '--store', store, ...profileArgs(bench)];
  let store = await fresh('store-lmtp');
  await bench.child(corpus.name, 'lmtp', [...common(store), '--list', corpus.list, '--messages', String(s.deliver), '--warmup', String(warmup), '--connections', '1'], { peer: 'mailstore', measurement: 'lmtp' });
  await removeTree(store);
  store = await fresh(`store-lmtp-${LMTP_CONNECTIONS}c`);
  await bench.child(corpus.name, 'lmtp', [...common(store), '--list', corpus.list, '--messages', String(s.concurrent), '--warmup', String(warmup), '--connections', String(LMTP_CONNECTIONS)], { peer: `mailstore-${LMTP_CONNECTIONS}c`, measurement: 'lmtp' });
  await removeTree(store);
  // the floor of the 64-connection goal: the same client at 1 and 64 connections against smtp-server with no store
  const floor = await fresh('lmtp-floor');
  await bench.child(corpus.name, 'lmtp-floor', ['--client', client, '--dir', floor, '--list', corpus.list, '--messages', String(s.deliver), '--concurrent', String(s.concurrent), '--warmup', String(warmup), '--connections', String(LMTP_CONNECTIONS)], { peer: 'floor-lmtp', measurement: 'lmtp' });
  await removeTree(floor);
  if (bench.round !== 1) return;
  // the RSS run: 150k by default, 1M with --scale; 10x the one-connection count when that is
  // below its default of 2,000 (--quick, --deliver N: a short run, without a snapshot)
  const deliveries = s.scale ? RSS_DELIVERIES_SCALE : s.deliver >= 2000 ? RSS_DELIVERIES_DEFAULT : 10 * s.deliver;
  const list = await smallMessagesList(corpus.list, join(work, 'lmtp-rss-list.txt'));
  store = await fresh('store-lmtp-rss');
  await bench.child(corpus.name, 'lmtp', [...common(store), '--list', list, '--messages', String(deliveries), '--connections', String(LMTP_CONNECTIONS), '--received', '--measurement', 'lmtp-rss', '--peer', 'mailstore'],
    { peer: 'mailstore', measurement: 'lmtp-rss' });
  await removeTree(store);
}

/** Cyrus and Dovecot (mdbox) delivering the first `deliver` messages over LMTP after `warmup` untimed ones, nothing else of their scripts. */
async function lmtpPeers(bench: Bench, corpus: CorpusInfo, deliver: number, warmup: number): Promise<void> {
  const env = { PEERS_FORMATS: '', PEERS_DELIVER_FORMATS: 'mdbox', PEERS_DELIVER_ONLY: '1', PEERS_DELIVER_LIMIT: String(deliver), LMTP_WARMUP: String(warmup) };
  const shown = `${Object.entries(env).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ')} tools/bench/peers/run.sh ${bench.paths.display(corpus.source)} ${bench.paths.display(corpus.work)} cyrus dovecot`;
  bench.command(shown);
  progress(`LMTP peers on ${corpus.name}${bench.round > 1 ? ` (round ${bench.round})` : ''}: cyrus, dovecot mdbox`);
  const ran = await run('bash', [join(bench.paths.peers, 'run.sh'), corpus.source, corpus.work, 'cyrus', 'dovecot'], { env });
  const lines = peerLmtpLines(jsonLines(ran.stdout));
  if (lines.length === 0) bench.add(corpus.name, { peer: 'lmtp-peers', measurement: 'lmtp', error: `run.sh exited ${ran.code} with no delivery line` });
  for (const line of lines) bench.add(corpus.name, { ...line, command: `${shown} (see tools/bench/README.md)` });
}

/** The delivery lines of the peer scripts, renamed to the lmtp step's measurement (the deliver table keeps its own). */
export function peerLmtpLines(lines: BenchResult[]): BenchResult[] {
  return lines.filter((r) => r.measurement === 'deliver').map((r) => ({ ...r, measurement: 'lmtp' }));
}

/**
 * The RSS run's messages: the corpus's messages of at most RSS_MESSAGE_BYTES_MAX bytes, at most
 * RSS_MESSAGES_MAX of them (all of the first ones when none is that small).
 */
async function smallMessagesList(list: string, out: string): Promise<string> {
  const files = (await fs.readFile(list)).toString('utf8').split('\n').filter(Boolean);
  const small: string[] = [];
  for (const file of files) {
    if (small.length >= RSS_MESSAGES_MAX) break;
    if ((await fs.stat(file)).size <= RSS_MESSAGE_BYTES_MAX) small.push(file);
  }
  await writeText(out, `${(small.length ? small : files.slice(0, RSS_MESSAGES_MAX)).join('\n')}\n`);
  return out;
}

async function daemonStep(bench: Bench, corpus: CorpusInfo, work: string): Promise<void> {
  const s = bench.settings;
  const fresh = async (name: string) => { const dir = join(work, name); await removeTree(dir); return dir; };
  const rename = (peer: string) => (r: BenchResult) => ({ ...r, peer, measurement: 'daemon' });
  // the one-writer pair warmed alike (deliveryWarmup untimed appends first, the p50 goal is on warm code)
  const warmup = deliveryWarmup(s);
  // the library first, then the client, on the same messages, in each pair
  let store = await fresh('store-daemon-library');
  await bench.child(corpus.name, 'deliver', ['--store', store, '--list', corpus.list, '--messages', String(s.deliver), '--warmup', String(warmup), '--writers', '1'], { peer: 'mailstore-library', measurement: 'daemon' }, rename('mailstore-library'));
  store = await fresh('store-daemon-client');
  await bench.child(corpus.name, 'daemon', ['--cli', bench.paths.cli, '--store', store, '--list', corpus.list, '--messages', String(s.deliver), '--warmup', String(warmup), '--processes', '1', ...profileArgs(bench)], { peer: 'mailstore-client', measurement: 'daemon' });
  const n = LMTP_CONNECTIONS;
  const many = ['--list', corpus.list, '--messages', String(s.concurrent), '--warmup', String(warmup)];
  store = await fresh(`store-daemon-library-${n}w`);
  await bench.child(corpus.name, 'deliver', ['--store', store, ...many, '--writers', String(n)], { peer: `mailstore-library-${n}w`, measurement: 'daemon' }, rename(`mailstore-library-${n}w`));
  store = await fresh(`store-daemon-client-${n}p`);
  await bench.child(corpus.name, 'daemon', ['--cli', bench.paths.cli, '--store', store, ...many, '--processes', String(n), ...profileArgs(bench)], { peer: `mailstore-client-${n}p`, measurement: 'daemon' });
  store = await fresh(`floor-daemon-client-${n}p`);
  await bench.child(corpus.name, 'daemon', ['--floor', '--store', store, ...many, '--processes', String(n)], { peer: `floor-client-${n}p`, measurement: 'daemon' });
  for (const name of ['store-daemon-library', 'store-daemon-client', `store-daemon-library-${n}w`, `store-daemon-client-${n}p`, `floor-daemon-client-${n}p`]) await removeTree(join(work, name));
}

/** With --profile, the daemon runs under node --cpu-prof too (its profile beside the others). */
function profileArgs(bench: Bench): string[] {
  return bench.settings.profile ? ['--profile', join(bench.paths.scratch, 'profiles')] : [];
}
