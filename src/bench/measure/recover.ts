// Open after a crash, and a full index rebuild from the journal.
//
//   --crash:   a `mailstore import` process is killed with SIGKILL mid-import; then Store.open
//              (resolve the tail, replay what the index had not applied) is timed, and every
//              batch the import reported durable must be there.
//   --rebuild: a clean open of an existing store is timed, then index/ is deleted and the open
//              (full rebuild from the journal) is timed.
//
//   node dist/src/bench/measure/recover.js --crash --store DIR --mbox FILE --cli CLI.js --kill-after N
//   node dist/src/bench/measure/recover.js --rebuild --store DIR
import { spawn } from 'node:child_process';
import { nodeFileSystem as fs } from '../../fs/node-fs.js';
import { join } from 'node:path';
import { Store } from '../../store/store.js';
import { emit, parseFlags, peakRssBytes, required, round, runMeasurement } from '../common.js';

const { values, switches } = parseFlags(process.argv.slice(2));
const root = required(values, 'store');

if (switches.has('crash')) await runMeasurement('mailstore', 'recover', crash);
if (switches.has('rebuild')) await runMeasurement('mailstore', 'rebuild', rebuild);

async function crash(): Promise<void> {
  const cli = required(values, 'cli');
  const killAfter = Number(required(values, 'kill-after'));
  const child = spawn(process.execPath, [cli, '--store', root, 'import', required(values, 'mbox'), '--mailbox', 'INBOX', '--verbose', '--batch-messages', '100'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let acked = 0, killed = false, buffer = '';
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    buffer += chunk;
    for (let i = buffer.indexOf('\n'); i >= 0; i = buffer.indexOf('\n')) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      const m = /(\d+) imported so far/.exec(line);
      if (m) acked = Number(m[1]);
      if (!killed && acked >= killAfter) { killed = true; child.kill('SIGKILL'); }
    }
  });
  const code = await exited;
  if (!killed) throw new Error(`the import ended (exit ${code}) before it could be killed after ${killAfter} messages`);
  const started = performance.now();
  const store = await Store.open(root);
  const seconds = (performance.now() - started) / 1000;
  const found = (await store.status('INBOX')).messages;
  const health = store.health;
  await store.close();
  if (found < acked) throw new Error(`LOST MAIL: the import reported ${acked} messages durable before SIGKILL, open found ${found}`);
  emit({
    peer: 'mailstore', measurement: 'recover', messages: found, seconds: round(seconds, 4), acked, found,
    torn_tail_bytes: health.tornTailBytes ?? 0, peak_rss_bytes: peakRssBytes(),
    note: `SIGKILL to \`mailstore import\` (batches of 100) after it reported ${acked} messages durable (a process crash, not a power cut); ` +
      `Store.open timed: ${health.tornTailBytes ? `cut a torn tail of ${health.tornTailBytes} bytes, ` : ''}replay${health.rebuilt ? ` (rebuilt: ${health.rebuilt})` : ''}; found ${found} >= ${acked} acked`,
  });
}

async function rebuild(): Promise<void> {
  let started = performance.now();
  let store = await Store.open(root);
  const cleanSeconds = (performance.now() - started) / 1000;
  const stats = await store.stats();
  await store.close();
  emit({
    peer: 'mailstore', measurement: 'resync', messages: stats.messages, bytes: stats.bytesReferenced, seconds: round(cleanSeconds, 4),
    note: 'Store.open of a cleanly closed store (identity, lock, journal tail check, nothing to replay)',
  });
  await fs.removeTree(join(root, 'index'));
  started = performance.now();
  store = await Store.open(root);
  const seconds = (performance.now() - started) / 1000;
  const rebuiltFrom = store.health.rebuiltFrom ?? 'not rebuilt';
  const after = await store.stats();
  await store.close();
  if (after.messages !== stats.messages) throw new Error(`rebuild found ${after.messages} messages, expected ${stats.messages}`);
  emit({
    peer: 'mailstore', measurement: 'rebuild', messages: after.messages, bytes: after.bytesReferenced, seconds: round(seconds, 3),
    found: after.messages, expected: stats.messages, journal_bytes: stats.journalBytes, peak_rss_bytes: peakRssBytes(), rebuilt_from: rebuiltFrom,
    // from the newest snapshot and the journal after it when the store has one, else the whole journal
    note: `index/ deleted, then Store.open rebuilds it from ${rebuiltFrom} (${stats.journalSegments} journal segment(s), ${stats.journalBytes} bytes; no message bodies read); found ${after.messages} of ${stats.messages}`,
  });
}
