import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The slowest files, slowest first (seconds in a fresh clone's `npm test`, session 8). A fresh clone
 * has no vitest cache of durations, so vitest starts the biggest files first, and these (most of them
 * small files) came last: two long files starting near the end left one worker idle. Started first,
 * the many short files fill in behind them. Refresh from the per-file times a fresh run prints.
 */
const SLOWEST_FIRST = [
  'test/sim/damage-explorer.test.ts', // 77 s
  'test/objstore/tier-faults.test.ts', // 45 s
  'test/cli/admin.test.ts', // 38 s
  'test/packaging/packaging.test.ts', // 31 s
  'test/store/compact-crash.test.ts', // 30 s
  'test/objstore/tier.test.ts', // 27 s
  'test/sim/power-cut.test.ts', // 27 s
  'test/sim/crash-explorer-lost-writes.test.ts', // 25 s
  'test/sim/soak.test.ts', // 24 s
  'test/backup/faults.test.ts', // 23 s
  'test/cli/commands.test.ts', // 22 s
  'test/sim/crash-explorer.test.ts', // 22 s
  'test/sim/crash-explorer-rotation.test.ts', // 21 s
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
