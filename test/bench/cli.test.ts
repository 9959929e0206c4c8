// `mailstore bench --corpus DIR --quick` end to end from the built CLI, on a tiny corpus without
// peers: the report, raw JSON and charts are written and hold what was measured. Kept small (a
// couple dozen messages): 18 s on a quiet CI, yet over a minute at load 18.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { requireBuilt, run } from '../cli/helpers.js';
import { archiveMessages, writeV2 } from '../helpers/public-inbox.js';
import { tmpDir } from '../helpers/tmp.js';

beforeAll(requireBuilt);

describe('mailstore bench --corpus', () => {
  it('a quick run on a public-inbox archive, no peers: report.md, results.json and charts with the figures', async () => {
    const dir = tmpDir('bench-cli');
    const messages = archiveMessages(24);
    const archive = writeV2(join(dir, 'list'), [messages.map((add) => ({ add }))]);
    const out = join(dir, 'out');
    const ran = await run(['bench', '--corpus', archive, '--quick', '--no-peers', '--out', out, '--deliver', '10', '--rounds', '2', '--json']);
    expect(ran.stderr).not.toMatch(/INTERNAL/);
    expect(ran.code).toBe(0);
    const summary = JSON.parse(ran.stdout.toString('utf8')) as { report: string; json: string; charts: string[]; results: { peer: string; measurement: string; messages?: number; error?: string; round?: number }[] };
    // round 2 repeats the goal steps only (no CLI import or scrub, no space, no hash)
    const second = summary.results.filter((r) => r.round === 2).map((r) => `${r.peer}:${r.measurement}`);
    expect(second.filter((k) => k.startsWith('mailstore')).sort()).toEqual(['mailstore-inline:deliver', 'mailstore-two-file:deliver', 'mailstore:deliver', 'mailstore:import', 'mailstore:read', 'mailstore:rebuild', 'mailstore:rebuild-journal', 'mailstore:resync', 'mailstore:scrub']);
    expect(summary.results.filter((r) => r.round === 1 && r.peer === 'mailstore-cli').length).toBe(2);
    expect(summary.report).toBe(join(out, 'report.md'));
    const find = (peer: string, measurement: string) => summary.results.find((r) => r.peer === peer && r.measurement === measurement);
    const bytes = messages.reduce((n, m) => n + m.bytes.length, 0);
    expect(find('mailstore', 'import')).toMatchObject({ messages: 24 });
    expect(find('mailstore-cli', 'import')).toMatchObject({ messages: 24, bytes }); // read from the archive itself
    expect(find('mailstore', 'read')).toMatchObject({ messages: 24 });
    expect(find('mailstore', 'rebuild')).toMatchObject({ messages: 24 });
    expect(find('mailstore', 'deliver')).toMatchObject({ messages: 10 });
    // the one-sync goal rows and their floor warmed alike (the list's next 10 untimed first); the row judged against the peers stays cold
    for (const peer of ['mailstore-inline', 'mailstore-two-file', 'floor-sync-one-zeroed']) expect(find(peer, 'deliver')).toMatchObject({ messages: 10, warmup: 10, cold_messages: 10 });
    expect(find('mailstore', 'deliver')).not.toHaveProperty('warmup');
    expect(find('mailstore', 'recover')?.error).toMatch(/fewer than the 400/); // said, not silently missing
    const saved = JSON.parse(readFileSync(summary.json, 'utf8')) as { kind: string; corpora: { messages: number; bytes: number }[] };
    expect(saved.kind).toBe('corpus');
    expect(saved.corpora[0]).toMatchObject({ messages: 24, bytes });
    const report = readFileSync(summary.report, 'utf8');
    expect(report).toContain(`(public-inbox)`);
    expect(report).toMatch(/\| main \| 24 \|/);
    expect(report).toContain('### Bulk import of an mbox');
    expect(report).toMatch(/rebuild ≥ 100,000 messages\/s \(from a snapshot taken first, plus the journal after it; row mailstore rebuild\) — measured [\d,]+ messages\/s, median of 2 rounds, spread/);
    expect(report).toMatch(/^Goal: one-sync delivery: inline bodies ≥ 1\.8× the two-file commit \(same writer, inline off\) messages\/s, warm \(each after 10 untimed deliveries\) — measured .*; cold, the first 10 of a freshly started process, same run: .* → \*\*(pass|MISS)\*\*$/m);
    expect(report).toMatch(/### What could not run\n\n- main \/ peers \/ \*: not run: --no-peers/);
    expect(summary.charts.length).toBeGreaterThan(0);
    for (const chart of summary.charts) {
      expect(existsSync(chart)).toBe(true);
      expect(report).toContain(`](charts/${chart.slice(chart.lastIndexOf('/') + 1)})`);
    }
    expect(existsSync(join(out, 'work'))).toBe(false); // its stores are removed
    expect(existsSync(join(out, 'prepared', 'corpus', 'stats.env'))).toBe(true); // the prepared corpus is kept for the next run
    expect(readdirSync(join(out, 'prepared')).sort()).toEqual(['corpus', 'maildir']);
  }, 300_000); // 18 s on a quiet CI; over 60 s (the bound before) at load 18

  it('an unknown peer or a path that is no corpus is refused before anything runs', async () => {
    const dir = tmpDir('bench-cli-bad');
    const peer = await run(['bench', '--corpus', dir, '--peers', 'exchange', '--out', join(dir, 'out')]);
    expect(peer.code).toBe(5);
    expect(peer.stderr).toMatch(/INVALID: unknown peer "exchange"/);
    const missing = await run(['bench', '--corpus', join(dir, 'nope'), '--no-peers', '--out', join(dir, 'out')]);
    expect(missing.code).toBe(4);
    expect(missing.stderr).toMatch(/NOT_FOUND/);
  });
});
