import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The slowest files, slowest first (seconds of each file in session 36's last fresh-clone `npm test`
 * (710 s; the 15 files over 14 s), scaled by session 37's before/after of the files it made faster,
 * each alone at load ~10-16 beside other helpers' runs: so estimates, to be refreshed). A fresh
 * clone has no vitest cache of durations, so vitest starts the biggest files first, and these came
 * last: a long file starting near the end left one worker idle. Started first, the many short
 * files fill in behind them. Refresh from the per-file times a fresh run prints.
 */
const SLOWEST_FIRST = [
  'test/sim/damage-explorer.test.ts', // 64 s (79 s before the scan buffer's fix)
  'test/objstore/tier-faults.test.ts', // 40 s
  'test/cli/environment.test.ts', // 32 s (45 s)
  'test/cli/commands.test.ts', // 20 s
  'test/sim/power-cut.test.ts', // 19 s (25 s)
  'test/sim/faults.test.ts', // 18 s (27 s)
  'test/backup/faults.test.ts', // 18 s
  'test/sim/crash-import-pipelined.test.ts', // 15 s (16 s)
  'test/objstore/tier-network-faults.test.ts', // 14 s (18 s)
  'test/scrub/many-findings.test.ts', // 14 s (15 s)
  'test/backup/daemon-backup.test.ts', // 14 s
  'test/daemon/open-files.test.ts', // 14 s
  'test/import/resume.test.ts', // 14 s (26 s)
  'test/store/compact-crash.test.ts', // 11 s (18 s)
  'test/objstore/backup-bucket.test.ts', // 9 s (15 s)
  // under 14 s in that run, long in session 36's loaded ones: still ahead of the many short files
  'test/formats/mbox-differential.test.ts',
  'test/store/store.test.ts',
  'test/packaging/packaging.test.ts',
  'test/store/snapshots.test.ts',
  'test/scrub/scrub.test.ts',
  'test/sim/media.test.ts',
  'test/cli/admin.test.ts',
  'test/cli/drills.test.ts',
  'test/sim/filesystems.test.ts', // 21 s alone at load 11 (38 s before its commands ran in-process)
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

/**
 * Files that need a process of their own: a vi.mock (file-wide, of a module other files load too),
 * or counts of what the whole process holds (descriptors, sessions, heap) that another file's
 * leftovers in the same worker would move.
 */
const ISOLATED = [
  'test/store/read-pool-start.test.ts', // vi.mock('node:worker_threads')
  'test/backup/worker-start.test.ts', // vi.mock('node:worker_threads')
  'test/backup/worker-lost.test.ts', // vi.mock of src/backup/zstd.js
  'test/daemon/churn.test.ts', // /proc/self/fd, backup sessions, heap: back to a baseline
  'test/daemon/body-budget.test.ts', // the process's body bytes held, counted from 0
  'test/fs/stall-watch.test.ts', // watches every thread of the process
];

const timeouts = {
  testTimeout: 120_000,
  hookTimeout: 120_000,
};

export default defineConfig({
  test: {
    // The machine has 2 cores; crash and soak tests are heavy, keep the pool small.
    maxWorkers: 2,
    sequence: { sequencer: SlowestFirst },
    projects: [
      {
        // A worker runs file after file with the modules it loaded (isolate: false): a fresh
        // process and module graph a file cost ~0.5 s of CPU, over 300 files. The guard fails a
        // file that leaves a limit, the environment, the umask or the directory changed.
        test: {
          ...timeouts,
          name: 'shared',
          include: ['test/**/*.test.ts'],
          exclude: ISOLATED,
          isolate: false,
          setupFiles: ['test/helpers/shared-worker-guard.ts'],
        },
      },
      { test: { ...timeouts, name: 'isolated', include: ISOLATED } },
    ],
  },
});
