import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The slowest files, slowest first (seconds of each file in session 36's two full `vitest run`s of
 * the work tree, from their JSON reports, at load ~8-16 from the helpers' runs beside them, so high:
 * the mean of the two, or the second alone for a file the session made faster). A fresh clone has
 * no vitest cache of durations, so vitest starts the biggest files first, and these came last: a
 * long file starting near the end left one worker idle. Started first, the many short files fill
 * in behind them. Refresh from the per-file times a fresh run prints.
 */
const SLOWEST_FIRST = [
  'test/sim/damage-explorer.test.ts', // 149 s
  'test/sim/faults.test.ts', // 120 s
  'test/cli/environment.test.ts', // 66 s
  'test/import/resume.test.ts', // 53 s
  'test/objstore/tier-faults.test.ts', // 45 s
  'test/formats/mbox-differential.test.ts', // 41 s (237 s before the chunk ring's fix)
  'test/sim/filesystems.test.ts', // 39 s
  'test/sim/power-cut.test.ts', // 32 s
  'test/cli/commands.test.ts', // 32 s
  'test/store/store.test.ts', // 30 s
  'test/backup/faults.test.ts', // 30 s
  'test/sim/crash-import-pipelined.test.ts', // 29 s
  'test/backup/daemon-backup.test.ts', // 27 s
  'test/packaging/packaging.test.ts', // 27 s
  'test/store/compact-crash.test.ts', // 26 s
  'test/store/snapshots.test.ts', // 25 s
  'test/scrub/scrub.test.ts', // 24 s
  'test/sim/media.test.ts', // 24 s
  'test/cli/admin.test.ts', // 24 s (271 s spawning its commands)
  'test/cli/drills.test.ts', // 23 s
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
