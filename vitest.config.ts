import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The slowest files, slowest first (seconds of each file in the work tree's last `npm test`, session
 * 31, read from vitest's results cache; loaded by the helpers' runs beside it, so high). A fresh
 * clone has no vitest cache of durations, so vitest starts the biggest files first, and these came
 * last: a long file starting near the end left one worker idle. Started first, the many short
 * files fill in behind them. Refresh from the per-file times a fresh run prints.
 */
const SLOWEST_FIRST = [
  'test/backup/daemon-backup.test.ts', // 71 s
  'test/sim/damage-explorer.test.ts', // 60 s
  'test/backup/faults.test.ts', // 56 s
  'test/objstore/tier-faults.test.ts', // 54 s
  'test/formats/mbox-differential.test.ts', // 53 s
  'test/cli/admin.test.ts', // 40 s
  'test/backup/repair.test.ts', // 39 s
  'test/scrub/scrub.test.ts', // 30 s
  'test/objstore/backup-bucket.test.ts', // 29 s
  'test/sim/power-cut.test.ts', // 28 s
  'test/store/compact-crash.test.ts', // 27 s
  'test/sim/soak.test.ts', // 27 s
  'test/store/store.test.ts', // 27 s
  'test/backup/zstd.test.ts', // 24 s
  'test/backup/disaster.test.ts', // 22 s
  'test/scrub/recovery-source.test.ts', // 22 s
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
