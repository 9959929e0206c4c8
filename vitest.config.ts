import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The slowest files, slowest first (seconds of each file in the work tree's full `vitest run` of
 * session 36, from its JSON report, at load ~8-12 from the helpers' runs beside it, so high; the
 * files session 36 made faster (the mbox chunk ring, commands run in the test's process) scaled by
 * what each took alone before and after). A fresh clone has no vitest cache of durations, so vitest
 * starts the biggest files first, and these came last: a long file starting near the end left one
 * worker idle. Started first, the many short files fill in behind them. Refresh from the per-file
 * times a fresh run prints.
 */
const SLOWEST_FIRST = [
  'test/sim/damage-explorer.test.ts', // 174 s
  'test/sim/faults.test.ts', // 160 s
  'test/formats/mbox-differential.test.ts', // 237 s before the chunk ring's fix, ~145 s after
  'test/cli/environment.test.ts', // 78 s
  'test/import/resume.test.ts', // 64 s
  'test/cli/admin.test.ts', // 271 s (the first file started, at the highest load), ~60 s in this process
  'test/cli/commands.test.ts', // 100 s, ~55 s
  'test/sim/filesystems.test.ts', // 51 s
  'test/objstore/tier-faults.test.ts', // 48 s
  'test/sim/crash-import-pipelined.test.ts', // 35 s
  'test/store/store.test.ts', // 33 s
  'test/store/compact-crash.test.ts', // 31 s
  'test/packaging/packaging.test.ts', // 30 s
  'test/backup/daemon-backup.test.ts', // 60 s, ~30 s
  'test/sim/power-cut.test.ts', // 29 s
  'test/cli/drills.test.ts', // 42 s, ~21 s
  'test/cli/hostile-append-import.test.ts', // 21 s
  'test/store/snapshots.test.ts', // 20 s
  'test/scrub/many-findings.test.ts', // 19 s
  'test/scrub/scrub.test.ts', // 18 s
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
