// The report's section of bench step tier (tools/bench/tier.ts, measure/tier.ts): the store with
// its packs in a Ceph bucket beside the same store all-local, and the tier's goal rows (local disk
// share after the default policy's moves, peak RSS). Round 1 only (the step is not repeated).
import type { Goal, TaggedResult } from './report.js';

const MiB = 1024 * 1024;
const RSS_GOAL_BYTES = 256 * MiB;
const SHARE_GOAL = 0.15;

const fixed = (n: number | undefined, digits = 2) => (n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(digits));
const mbRate = (r: TaggedResult | undefined) => (r?.bytes && r.seconds ? r.bytes / r.seconds / 1e6 : undefined);

/** Renders the section into `out` and adds its goals; nothing when the step did not run. */
export function tierSection(out: string[], goals: Goal[], results: TaggedResult[]): void {
  const rows = results.filter((r) => r.measurement === 'tier' || r.measurement.startsWith('tier-'));
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
  const share = get('mailstore-tier', 'tier-policy')?.ratio as number | undefined;
  const rss = get('mailstore-tier', 'tier-rss')?.peak_rss_bytes;
  const anon = get('mailstore-tier', 'tier-rss')?.peak_rss_anon_bytes as number | undefined;
  const local = get('mailstore-local', 'tier-rss')?.peak_rss_bytes;
  const shareGoal: Goal = { text: `tier: local disk ÷ all pack bytes ≤ ${SHARE_GOAL} after the default policy's moves`, measured: share === undefined ? '' : fixed(share, 3), pass: share === undefined ? undefined : share <= SHARE_GOAL };
  const rssGoal: Goal = { text: 'tier: peak RSS ≤ 256 MB (import, moves, reads, scrubs)', measured: rss === undefined ? '' : `${fixed(rss / MiB, 0)} MiB${anon ? `, anonymous ${fixed(anon / MiB, 0)} MiB` : ''}${local ? `; all-local ${fixed(local / MiB, 0)} MiB` : ''}`, pass: rss === undefined ? undefined : rss <= RSS_GOAL_BYTES };
  for (const goal of [shareGoal, rssGoal]) {
    goals.push(goal);
    out.push(`Goal: ${goal.text} — measured ${goal.measured || 'n/a'} → ${goal.pass === undefined ? '**not measured**' : goal.pass ? '**pass**' : '**MISS**'}\n`);
  }
}
