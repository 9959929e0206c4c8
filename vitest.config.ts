import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The slowest files, slowest first: every file of 6 s or more in session 41's last fresh-clone
 * `npm test` (2 cores, vitest 751 s; seconds of each file in its worker). A fresh clone
 * has no vitest cache of durations, so vitest starts the biggest files first, and a long file that
 * starts near the end leaves the other worker idle (session 38: crash-explorer-rotation, 21 s, was
 * among the last). Started longest first, the many short files fill in behind them. Refresh from
 * the per-file times a fresh run prints; times of files made faster since are estimates.
 */
const SLOWEST_FIRST = [
  'test/objstore/tier-faults.test.ts', // 47 s
  'test/store/compact-crash.test.ts', // 31 s (estimate: made faster since)
  'test/sim/power-cut.test.ts', // 27 s
  'test/cli/commands.test.ts', // 24 s
  'test/sim/crash-explorer.test.ts', // 24 s (estimate: made faster since)
  'test/backup/repair.test.ts', // 22 s
  'test/backup/faults.test.ts', // 21 s (estimate: made faster since)
  'test/scrub/many-findings.test.ts', // 21 s (estimate: made faster since)
  'test/sim/crash-explorer-rotation.test.ts', // 21 s (estimate: made faster since)
  'test/cli/environment.test.ts', // 20 s
  'test/sim/damage-explorer.test.ts', // 20 s
  'test/sim/faults.test.ts', // 19 s
  'test/sim/crash-explorer-inline.test.ts', // 19 s (estimate: made faster since)
  'test/bench/cli.test.ts', // 19 s
  'test/sim/media.test.ts', // 19 s
  'test/store/store.test.ts', // 19 s
  'test/objstore/tier-network-faults.test.ts', // 18 s
  'test/sim/crash-explorer-lost-writes.test.ts', // 18 s (estimate: made faster since)
  'test/cli/missing-dependencies.test.ts', // 18 s
  'test/import/resume.test.ts', // 17 s
  'test/daemon/serve-faults.test.ts', // 17 s
  'test/packaging/packaging.test.ts', // 16 s
  'test/sim/soak.test.ts', // 16 s
  'test/scrub/scrub.test.ts', // 16 s
  'test/sim/snapshot-crash.test.ts', // 15 s
  'test/backup/daemon-backup.test.ts', // 15 s (estimate: made faster since)
  'test/import/public-inbox.test.ts', // 15 s
  'test/replication/resync.test.ts', // 14 s
  'test/cli/scrub-cron.test.ts', // 14 s
  'test/formats/mbox-differential.test.ts', // 14 s
  'test/replication/network-faults.test.ts', // 13 s
  'test/cli/drills.test.ts', // 13 s
  'test/cli/admin.test.ts', // 13 s
  'test/daemon/churn.test.ts', // 13 s
  'test/cli/lock-wait.test.ts', // 12 s
  'test/objstore/tier.test.ts', // 12 s
  'test/daemon/client.test.ts', // 12 s
  'test/daemon/open-files.test.ts', // 12 s
  'test/store/undump-many.test.ts', // 11 s
  'test/sim/counters-crash.test.ts', // 11 s
  'test/replication/pending-faults.test.ts', // 11 s
  'test/backup/heal.test.ts', // 10 s
  'test/sim/crash-import-pipelined.test.ts', // 10 s
  'test/scrub/recovery-source.test.ts', // 10 s
  'test/daemon/hostile.test.ts', // 10 s
  'test/scrub/scan.test.ts', // 10 s
  'test/daemon/serve.test.ts', // 10 s
  'test/events/events.test.ts', // 9 s
  'test/cli/drills-combined.test.ts', // 9 s
  'test/cli/uid-sets.test.ts', // 9 s
  'test/daemon/years.test.ts', // 9 s
  'test/backup/lock.test.ts', // 9 s
  'test/cli/admin-pairs.test.ts', // 9 s
  'test/daemon/hung-mount.test.ts', // 9 s
  'test/backup/crash-states.test.ts', // 9 s
  'test/store/compact.test.ts', // 8 s
  'test/replication/promote.test.ts', // 8 s
  'test/sim/years.test.ts', // 8 s
  'test/objstore/tier-background.test.ts', // 8 s
  'test/backup/incremental.test.ts', // 8 s
  'test/scrub/index-tables.test.ts', // 8 s
  'test/sim/filesystems.test.ts', // 8 s
  'test/cli/start-up.test.ts', // 7 s
  'test/replication/compaction.test.ts', // 7 s
  'test/daemon/lmtp.test.ts', // 7 s
  'test/store/snapshots.test.ts', // 7 s
  'test/sim/real-faults.test.ts', // 7 s
  'test/replication/sync-kill.test.ts', // 7 s
  'test/replication/faults.test.ts', // 7 s
  'test/store/delete-many.test.ts', // 7 s
  'test/events/webhook.test.ts', // 7 s
  'test/daemon/kill.test.ts', // 7 s
  'test/fs/stall-watch.test.ts', // 7 s
  'test/daemon/retention.test.ts', // 6 s
  'test/bench/corpus.test.ts', // 6 s
  'test/store/open-lock.test.ts', // 6 s
  'test/daemon/compact-kill.test.ts', // 6 s
  'test/packaging/scrub-unit.test.ts', // 6 s
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
  'test/replication/older-primary-damage.test.ts', // vi.mock of src/replication/history.js
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
    // The machine has 2 cores; crash and soak tests are heavy, keep the pool small. A third worker
    // has little idle time to fill (session 42: the 31 test/daemon files, alone in one worker, used
    // 171 s of CPU, their children's too, for the 186 s they took in session 41's CI), and more
    // processes on 2 cores stretch every bound a loaded machine already strains.
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
