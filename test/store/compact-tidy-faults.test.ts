// The background tidy after a compaction (store.ts tidyAfterCompaction: LevelDB rewrites its files,
// then an automatic snapshot retires the journal below the snapshot before it: each store here
// takes one after its churn, since a lone snapshot retires nothing) failing half-way: ENOSPC or
// EIO writing the snapshot, EIO making a retirement durable, LevelDB's own compaction failing. The
// compaction itself was committed and acknowledged; the tidy's failure reaches the automatic
// snapshot's report (StoreOptions.onSnapshot, else a health finding) with a clear code, the store
// stays usable (nothing of the tidy is a commit), no message is lost, and a later snapshot and
// compaction finish the job with scrub finding no damage.
import { describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { MailstoreError } from '../../src/errors.js';
import type { SnapshotResult } from '../../src/store/snapshots.js';
import { PackedStore as Store } from '../helpers/packed.js';
import { internalsOf } from '../helpers/internals.js';
import { tmpDir } from '../helpers/tmp.js';
import { codeOf } from '../helpers/errors.js';
import { FaultFileSystem, type FailAllOptions, type FaultKind } from '../sim/faultfs.js';
import { body, churned, expectExact, expectScrubClean } from './compact-helpers.js';

interface Reported { result?: SnapshotResult; error?: unknown }

/**
 * A churned store on FaultFS with small journal segments and a snapshot after the churn (so the
 * tidy's snapshot is the second generation and has segments to retire), reporting its tidy.
 */
async function tidyStore() {
  const dir = tmpDir('compact-tidy');
  const ffs = new FaultFileSystem();
  const reports: Reported[] = [];
  const background: unknown[] = [];
  let reported: (() => void) | undefined;
  const churn = await churned(dir, {
    fs: ffs, journalSegmentBytesMax: 4096,
    onSnapshot: (result, error) => { reports.push({ result, error }); reported?.(); },
    onBackgroundError: (error) => background.push(error),
  });
  expect((await churn.store.snapshot()).retired.segments, 'the first generation retires nothing').toEqual([]);
  /** Resolves at the next automatic snapshot report (the tidy's). */
  const nextReport = () => new Promise<Reported>((resolve) => { reported = () => resolve(reports[reports.length - 1]); });
  return { dir, ffs, reports, background, nextReport, ...churn };
}

function segments(dir: string): string[] {
  return readdirSync(join(dir, 'journal')).sort();
}

/** A tidy's error as onSnapshot got it: a MailstoreError with `code`. */
function expectReported(error: unknown, code: string): MailstoreError {
  expect(error).toBeInstanceOf(MailstoreError);
  expect((error as MailstoreError).code, (error as Error).message).toBe(code);
  return error as MailstoreError;
}

/** Closes the store, reopens it: not degraded, every message exact (`late` too), scrub finds no damage. */
async function expectIntactAfterReopen(store: Store, dir: string, churn: { bodies: Map<number, Buffer>; gone: number[] }, late: { uid: number; bytes: Buffer }): Promise<void> {
  await store.close();
  const reopened = await Store.open(dir);
  try {
    expect(reopened.health.degraded, reopened.health.findings.join('; ')).toBe(false);
    await expectExact(reopened, churn.bodies, churn.gone);
    expect((await reopened.fetch('K', late.uid)).equals(late.bytes)).toBe(true);
    await expectScrubClean(reopened);
  } finally {
    await reopened.close();
  }
}

const CASES: { name: string; kind: FaultKind; options: (dir: string) => FailAllOptions; code: string }[] = [
  { name: 'ENOSPC writing the snapshot', kind: 'ENOSPC', options: (dir) => ({ pathPrefix: join(dir, 'snapshots') }), code: 'NO_SPACE' },
  { name: 'EIO writing the snapshot', kind: 'EIO', options: (dir) => ({ pathPrefix: join(dir, 'snapshots'), ops: ['write'] }), code: 'IO' },
  { name: 'EIO syncing the snapshot', kind: 'EIO', options: (dir) => ({ pathPrefix: join(dir, 'snapshots'), ops: ['sync'] }), code: 'IO' },
];

describe('compaction: its background tidy failing', () => {
  for (const { name, kind, options, code } of CASES) {
    it(`${name}: ${code} to onSnapshot, the store goes on, nothing lost, a later snapshot and compaction finish, scrub clean`, async () => {
      const { dir, ffs, reports, background, nextReport, store, bodies, gone } = await tidyStore();
      const before = segments(dir);
      expect(before.length, 'the churn spans several journal segments').toBeGreaterThan(2);
      ffs.failAll(kind, options(dir));
      const tidy = nextReport();
      const result = await store.compact();
      expect(result.packsRemoved, 'the compaction removed a pack, so the tidy runs').toEqual([1]);
      expectReported((await tidy).error, code);
      expect(ffs.firedFaults().length, 'the fault was hit').toBeGreaterThan(0);
      expect(background, 'a tidy is an automatic snapshot: its outcome goes to onSnapshot only').toEqual([]);
      expect(store.health.degraded).toBe(false);
      // usable while the fault lasts: reads, and appends (the tidy committed nothing it could break)
      await expectExact(store, bodies, gone);
      const late = body(77, 900);
      const { uid } = await store.append('K', late);
      ffs.clear();
      const snapshot = await store.snapshot();
      expect(snapshot.retired.segments.length, 'the retirement the tidy could not make').toBeGreaterThan(0);
      expect((await store.compact()).packsRewritten, 'nothing left dead').toEqual([]);
      expect(reports.every((r) => r.error === undefined || r === reports[0]), 'only the first tidy failed').toBe(true);
      await expectExact(store, bodies, gone);
      expect((await store.fetch('K', uid)).equals(late)).toBe(true);
      await expectScrubClean(store);
      await expectIntactAfterReopen(store, dir, { bodies, gone }, { uid, bytes: late });
    });
  }

  it('EIO syncing the journal directory after a segment was unlinked: IO to onSnapshot; the next snapshot retires the rest, nothing lost', async () => {
    const { dir, ffs, reports, nextReport, store, bodies, gone } = await tidyStore();
    const journalDir = join(dir, 'journal');
    let unlinked = false;
    // the segment's name is gone but not durably: the directory sync after it fails
    ffs.injectAt((op) => {
      if (op.kind === 'unlink' && op.path.startsWith(journalDir)) unlinked = true;
      return unlinked && op.kind === 'syncDir' && op.path === journalDir;
    }, 'EIO');
    const tidy = nextReport();
    await store.compact();
    expect(expectReported((await tidy).error, 'IO').message).toMatch(/retiring a journal segment/);
    const late = body(78, 700);
    const { uid } = await store.append('K', late);
    const again = await store.snapshot();
    expect(again.retired.segments[0], 'the segment whose removal was not durable counts as retired once synced').toBe('0000000000000001.jnl');
    expect(segments(dir)).not.toContain('0000000000000001.jnl');
    expect(reports.filter((r) => r.error)).toHaveLength(1);
    await expectExact(store, bodies, gone);
    await expectScrubClean(store);
    await expectIntactAfterReopen(store, dir, { bodies, gone }, { uid, bytes: late });
  });

  it('without onSnapshot, a failed tidy is a health finding naming its code; the next snapshot retires', async () => {
    const dir = tmpDir('compact-tidy');
    const ffs = new FaultFileSystem();
    const { store, bodies, gone } = await churned(dir, { fs: ffs, journalSegmentBytesMax: 4096 });
    await store.snapshot(); // the older generation the next ones retire below
    ffs.failAll('ENOSPC', { pathPrefix: join(dir, 'snapshots') });
    await store.compact();
    expect(await codeOf(store.snapshot()), 'queued behind the tidy (one snapshot at a time), on the same full disk').toBe('NO_SPACE');
    ffs.clear();
    expect((await store.snapshot()).retired.segments.length).toBeGreaterThan(0);
    const findings = store.health.findings.join('\n');
    expect(findings).toMatch(/an automatic snapshot failed \(the journal was not retired\)/);
    expect(findings).toMatch(/ENOSPC/);
    await expectExact(store, bodies, gone);
    await expectScrubClean(store);
    await store.close();
  });

  it("LevelDB's own compaction failing: its MailstoreError goes to onBackgroundError, the snapshot after it still runs and retires", async () => {
    const { store, reports, background, nextReport, bodies, gone } = await tidyStore();
    internalsOf(store).db.compactFiles = () => Promise.reject(new MailstoreError('IO', 'compacting the index files: EIO (injected)'));
    const tidy = nextReport();
    await store.compact();
    const snapshot = await tidy;
    expect(snapshot.error, 'the index files are not the snapshot: it ran').toBeUndefined();
    expect(snapshot.result?.retired.segments.length).toBeGreaterThan(0);
    expect(background).toHaveLength(1);
    expectReported(background[0], 'IO');
    expect(reports.filter((r) => r.error)).toEqual([]);
    await expectExact(store, bodies, gone);
    await expectScrubClean(store);
    await store.close();
  });

  it("without onBackgroundError, LevelDB's compaction failing is a health finding that says so (not 'a snapshot failed')", async () => {
    const dir = tmpDir('compact-tidy');
    const { store, bodies, gone } = await churned(dir, { journalSegmentBytesMax: 4096 });
    internalsOf(store).db.compactFiles = () => Promise.reject(new MailstoreError('IO', 'compacting the index files: EIO (injected)'));
    await store.compact();
    await store.snapshot(); // queues behind the tidy
    const findings = store.health.findings.join('\n');
    expect(findings).toMatch(/tidying the index files after a compaction failed.*EIO \(injected\)/);
    expect(findings).not.toMatch(/snapshot failed/);
    await expectExact(store, bodies, gone);
    await store.close();
  });
});
