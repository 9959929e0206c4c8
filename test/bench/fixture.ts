// A run's data with figures from a real `npm run bench -- --scale` (BENCHMARKS.md, 2026-11), so the
// report and chart tests check drawings of numbers whose ratios are known.
import type { BenchResult } from '../../src/bench/common.js';
import type { CorpusInfo, RunData, TaggedResult } from '../../src/bench/report.js';

const corpus = (name: string, messages: number, bytes: number): CorpusInfo => ({
  name, source: `/corpora/${name}`, work: `/work/${name}`, list: `/work/${name}/corpus/list.txt`, mbox: `/work/${name}/corpus/corpus.mbox`,
  messages, bytes, mboxBytes: bytes + messages * 45, duplicates: Math.round(messages / 20), how: `fixture ${name}`,
});

const main = (r: BenchResult): TaggedResult => ({ corpus: 'main', ...r });
const MB = 1_000_000;
const MiB = 1_048_576;

export function fixtureRun(options: { scale?: boolean; kind?: RunData['kind'] } = {}): RunData {
  const results: TaggedResult[] = [
    main({ peer: 'mailstore', measurement: 'import', messages: 20_000, bytes: 611 * MB, seconds: 5.123, peak_rss_bytes: 246 * MiB, fsyncs: 48 }),
    main({ peer: 'dovecot-mdbox', measurement: 'import', messages: 20_000, bytes: 611 * MB, seconds: 6.934 }),
    main({ peer: 'git', measurement: 'import', messages: 20_000, bytes: 611 * MB, seconds: 29.1 }),
    main({ peer: 'cyrus', measurement: 'import', error: 'not measured: Cyrus has no bulk mbox import tool' }),
    main({ peer: 'mailstore', measurement: 'deliver', messages: 2000, bytes: 61 * MB, seconds: 3.044, p50_ms: 1.18, p99_ms: 5.85 }),
    main({ peer: 'dovecot-mdbox', measurement: 'deliver', messages: 2000, bytes: 61 * MB, seconds: 9.65, p50_ms: 4.08, p99_ms: 13.3 }),
    main({ peer: 'cyrus', measurement: 'deliver', messages: 2000, bytes: 61 * MB, seconds: 12.0, p50_ms: 5.24, p99_ms: 21.1 }),
    main({ peer: 'mailstore', measurement: 'read', messages: 20_000, bytes: 611 * MB, seconds: 1.207 }),
    main({ peer: 'dovecot-mdbox', measurement: 'read', messages: 20_000, bytes: 611 * MB, seconds: 1.306 }),
    main({ peer: 'git', measurement: 'read', messages: 20_000, bytes: 611 * MB, seconds: 5.5 }),
    main({ peer: 'mailstore', measurement: 'scrub', messages: 20_000, bytes: 590 * MB, seconds: 1.134 }),
    main({ peer: 'b3sum-packs', measurement: 'scrub', messages: 20_000, bytes: 591 * MB, seconds: 0.12 }),
    main({ peer: 'cyrus', measurement: 'scrub', messages: 2000, bytes: 53.2 * MB, seconds: 0.637 }),
    main({ peer: 'mailstore', measurement: 'rebuild', messages: 20_000, seconds: 0.769 }),
    main({ peer: 'cyrus', measurement: 'rebuild', messages: 2000, seconds: 0.721 }),
    main({ peer: 'mailstore', measurement: 'space', messages: 20_000, bytes: 611 * MB, disk_bytes: 601 * MB, ratio: 0.984 }),
    main({ peer: 'dovecot-mdbox', measurement: 'space', messages: 20_000, bytes: 611 * MB, disk_bytes: 625 * MB, ratio: 1.023 }),
  ];
  const corpora = [corpus('main', 20_000, 611 * MB)];
  if (options.scale) {
    const steps = [[10_000, 27 * MB, 3.1, 0.29, 0.21, 136, 91, 97, 119], [100_000, 271 * MB, 33, 2.9, 2.4, 170, 119, 177, 202], [1_000_000, 2704 * MB, 360, 31, 27, 222, 130, 308, 304]] as const;
    for (const [n, bytes, importS, scrubS, rebuildS, importRss, importAnon, scrubRss, rebuildRss] of steps) {
      const name = `scale-${n}`;
      corpora.push(corpus(name, n, bytes));
      results.push(
        { corpus: name, peer: 'mailstore', measurement: 'import', messages: n, bytes, seconds: importS, peak_rss_bytes: importRss * MiB, peak_rss_anon_bytes: importAnon * MiB },
        { corpus: name, peer: 'mailstore', measurement: 'scrub', messages: n, bytes, seconds: scrubS, peak_rss_bytes: scrubRss * MiB },
        { corpus: name, peer: 'mailstore', measurement: 'rebuild', messages: n, seconds: rebuildS, peak_rss_bytes: rebuildRss * MiB },
      );
    }
  }
  return {
    started: '2026-11-30T10:00:00.000Z', finished: '2026-11-30T10:40:00.000Z', mode: 'full', scale: options.scale === true, argv: [],
    machine: { cores: 2, cpuModel: 'test cpu', memoryBytes: 8 * 2 ** 30, kernel: '6.1', os: 'Debian 12', disk: '/dev/vda ext4', diskModel: 'vda', node: 'v20', loadStart: [0.1, 0.1, 0.1], loadEnd: [0.2, 0.2, 0.2], hostname: 'test', commit: 'abc1234' },
    corpora, results, commands: ['node dist/src/bench/measure/import.js --store STORE --mbox MBOX'], settings: { deliver: 2000 },
    ...(options.kind ? { kind: options.kind } : {}),
  };
}
