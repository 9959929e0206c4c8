// The report's section of bench step tier (tools/bench/tier.ts, measure/tier.ts): the store with
// its packs in a Ceph bucket beside the same store all-local, and the tier's goal rows (local disk
// share after the default policy's moves, peak RSS). The table shows round 1; the goal rows are the
// median of every round's figure with its spread (later rounds repeat the tier store only).
import { roundGoal } from './report-backup.js';
import { firstRound, type Goal, type TaggedResult } from './report.js';

const MiB = 1024 * 1024;
/** Issue 20 states "RSS ≤ 256 MB": decimal megabytes, so 256,000,000 bytes (244.1 MiB), compared in MB. */
const RSS_GOAL_MB = 256;
const SHARE_GOAL = 0.15;

const fixed = (n: number | undefined, digits = 2) => (n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(digits));
const mbRate = (r: TaggedResult | undefined) => (r?.bytes && r.seconds ? r.bytes / r.seconds / 1e6 : undefined);

/** Renders the section into `out` and adds its goals; nothing when the step did not run. */
export function tierSection(out: string[], goals: Goal[], results: TaggedResult[]): void {
  const all = results.filter((r) => r.measurement === 'tier' || r.measurement.startsWith('tier-'));
  const rows = firstRound(all);
  if (rows.length === 0) return;
  out.push('### Object-storage tier (Ceph radosgw on loopback) beside the same store all-local\n');
  const skipped = rows.find((r) => r.error);
  if (skipped && !rows.some((r) => !r.error && r.peer === 'mailstore-tier')) {
    out.push(`Not measured: ${skipped.error}\n`);
    goals.push({ text: `tier: local disk ÷ all pack bytes ≤ ${SHARE_GOAL} after the default policy's moves`, measured: '', pass: undefined });
    return;
  }
  const get = (peer: string, measurement: string) => rows.find((r) => r.peer === peer && r.measurement === measurement && !r.error);
  const line = (what: string, value: (peer: string) => string) => out.push(`| ${what} | ${value('mailstore-local')} | ${value('mailstore-tier')} |`);
  out.push('| measurement | all-local | tier (bucket) |\n|---|---|---|');
  line('import: seconds to durable', (p) => fixed(get(p, 'tier-import')?.seconds));
  line('moves under the default policy: seconds from the import start to the last move', (p) => (p === 'mailstore-tier' ? fixed(get(p, 'tier-policy')?.seconds) : '–'));
  line('`tier flush`: seconds from the import start until every sealed pack is in the bucket', (p) => (p === 'mailstore-tier' ? fixed(get(p, 'tier-flush')?.seconds) : '–'));
  line('single message fetch after a reopen, p50 / p99 µs', (p) => `${fixed(get(p, 'tier-read-message')?.p50_us, 0)} / ${fixed(get(p, 'tier-read-message')?.p99_us, 0)}`);
  line('whole mailbox (readMessages), MB/s', (p) => fixed(mbRate(get(p, 'tier-read-mailbox')), 1));
  line('full scrub, seconds (MB/s)', (p) => `${fixed(get(p, 'tier-scrub')?.seconds)} (${fixed(mbRate(get(p, 'tier-scrub')), 1)})`);
  line('scrub `--objects checksum`, seconds', (p) => (p === 'mailstore-tier' ? fixed(get(p, 'tier-scrub-checksum')?.seconds) : '–'));
  line('local ÷ all pack bytes after the policy\'s moves (after `tier flush`)', (p) => (p === 'mailstore-tier' ? `${fixed(get(p, 'tier-policy')?.ratio as number, 3)} (${fixed(get(p, 'tier-flush')?.ratio as number, 3)})` : '1'));
  line('peak RSS (anonymous), MiB, once the import is durable', (p) => `${fixed((get(p, 'tier-import')?.peak_rss_bytes ?? NaN) / MiB, 0)} (${fixed(((get(p, 'tier-import')?.peak_rss_anon_bytes as number | undefined) ?? NaN) / MiB, 0)})`);
  line('peak RSS (anonymous), MiB, the whole process', (p) => `${fixed((get(p, 'tier-rss')?.peak_rss_bytes ?? NaN) / MiB, 0)} (${fixed(((get(p, 'tier-rss')?.peak_rss_anon_bytes as number | undefined) ?? NaN) / MiB, 0)})`);
  out.push('');
  const shareGoal = roundGoal(all, `tier: local disk ÷ all pack bytes ≤ ${SHARE_GOAL} after the default policy's moves`, (rs) => {
    const share = rs.find((r) => r.peer === 'mailstore-tier' && r.measurement === 'tier-policy' && !r.error)?.ratio as number | undefined;
    return share === undefined ? undefined : { x: share, show: `local ${fixed(share, 3)} of all pack bytes` };
  }, (m) => m <= SHARE_GOAL, '');
  const rssGoal = roundGoal(all, `tier: peak RSS ≤ ${RSS_GOAL_MB} MB = ${(RSS_GOAL_MB * 1e6).toLocaleString('en-US')} bytes (${fixed(RSS_GOAL_MB * 1e6 / MiB, 1)} MiB), the whole process: import, moves, reads, scrubs`, (rs) => {
    const of = (peer: string) => rs.find((r) => r.peer === peer && r.measurement === 'tier-rss' && !r.error);
    const tier = of('mailstore-tier'), local = of('mailstore-local');
    if (!tier?.peak_rss_bytes) return undefined;
    const anon = tier.peak_rss_anon_bytes as number | undefined;
    return { x: tier.peak_rss_bytes / 1e6, show: `${fixed(tier.peak_rss_bytes / MiB, 0)} MiB${anon ? `, anonymous ${fixed(anon / MiB, 0)} MiB` : ''}${local?.peak_rss_bytes ? `; all-local ${fixed(local.peak_rss_bytes / 1e6, 0)} MB` : ''}` };
  }, (m) => m <= RSS_GOAL_MB, ' MB');
  for (const goal of [shareGoal, rssGoal]) {
    goals.push(goal);
    out.push(`Goal: ${goal.text} — measured ${goal.measured || 'n/a'} → ${goal.pass === undefined ? '**not measured**' : goal.pass ? '**pass**' : '**MISS**'}\n`);
  }
}
