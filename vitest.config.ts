import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The slowest files, slowest first (seconds of each file in the work tree's full `vitest run` of
 * session 35, from its JSON report, at load ~12 from the helpers' runs beside it, so high, and
 * higher for the files that start many command processes; soak and resume scaled to their new
 * sizes). A fresh clone has no vitest cache of durations, so vitest starts the biggest files first,
 * and these came last: a long file starting near the end left one worker idle. Started first, the
 * many short files fill in behind them. Refresh from the per-file times a fresh run prints.
 */
const SLOWEST_FIRST = [
  'test/formats/mbox-differential.test.ts', // 162 s
  'test/cli/admin.test.ts', // 133 s
  'test/sim/faults.test.ts', // 112 s
  'test/sim/damage-explorer.test.ts', // 107 s
  'test/cli/environment.test.ts', // 100 s
  'test/import/resume.test.ts', // 93 s
  'test/cli/commands.test.ts', // 80 s
  'test/sim/filesystems.test.ts', // 69 s
  'test/store/store.test.ts', // 66 s
  'test/cli/hostile-append-import.test.ts', // 65 s
  'test/store/compact-crash.test.ts', // 63 s
  'test/cli/drills.test.ts', // 60 s
  'test/packaging/packaging.test.ts', // 59 s
  'test/sim/crash-import-pipelined.test.ts', // 54 s
  'test/backup/daemon-backup.test.ts', // 52 s
  'test/objstore/tier-faults.test.ts', // 44 s
  'test/scrub/many-findings.test.ts', // 43 s
  'test/sim/power-cut.test.ts', // 43 s
  'test/backup/cli.test.ts', // 41 s
  'test/sim/media.test.ts', // 39 s
  'test/backup/zstd.test.ts', // 38 s
  'test/backup/repair.test.ts', // 38 s
];

class SlowestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (file: TestSpecification) => {
      const at = SLOWEST_FIRST.findIndex((path) => file.moduleId.endsWith(path));
      return at < 0 ? SLOWEST_FIRST.length : at;
    };
    // stable: the rest keep vitest's order (its measured durations, when it has them)
    return sorted.map((file, at) => ({ file, at })).sort((a, b) => rank(a.file) - rank(b.file) || a.at - b.at).map(({ file }) => file);
  }
}

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // The machine has 2 cores; crash and soak tests are heavy, keep the pool small.
    maxWorkers: 2,
    sequence: { sequencer: SlowestFirst },
  },
});
