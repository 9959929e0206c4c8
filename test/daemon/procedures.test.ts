// The maintenance procedures of the daemon (src/daemon/procedures.ts: compact, snapshot,
// consumers, tier) run through a real `mailstore serve` child by the CLI, as an admin runs them
// beside a live server: with --no-wait, a command that tried to open the store itself would fail
// LOCKED at once, so exit 0 means the daemon ran it. Afterwards the daemon is stopped and the
// store opened here: every live message exact, scrub clean, the effect of each procedure there.
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Store, type StoreOptions } from '../../src/store/store.js';
import { PACKED } from '../helpers/packed.js';
import { body, expectScrubClean, packsBytes } from '../store/compact-helpers.js';
import { requireBuilt, tempDir } from '../cli/helpers.js';
// the CLI's command lines run in this process (in-process.ts, a sample checked against the
// spawned command), reaching the daemon over its socket as a spawned one does
import { json, run } from '../cli/in-process.js';
import { serve, type Daemon } from './processes.js';

beforeAll(requireBuilt);

/**
 * A store with 40 messages in M, every uid not divisible by 5 expunged. With PACKED their bytes
 * are dead in a pack; by default (inline bodies) they are in their journal records.
 */
async function churnedStore(options: StoreOptions = {}): Promise<{ root: string; live: Map<number, Buffer>; gone: number[] }> {
  const root = join(tempDir('mailstore-procedures-'), 'store');
  const store = await Store.open(root, { create: true, ...options });
  await store.createMailbox('M');
  const bodies = new Map<number, Buffer>();
  for (let i = 1; i <= 40; i++) {
    const bytes = body(i, 3000 + (i % 7) * 900);
    bodies.set((await store.append('M', bytes)).uid, bytes);
  }
  const gone = [...bodies.keys()].filter((u) => u % 5 !== 0);
  await store.expunge('M', gone);
  await store.changes.register('test-feed', 3);
  await store.close();
  return { root, live: new Map([...bodies].filter(([u]) => u % 5 === 0)), gone };
}

async function stop(daemon: Daemon): Promise<void> {
  daemon.child.kill('SIGTERM');
  expect(await daemon.exited, daemon.stderr()).toBe(0);
}

/** After the daemon stopped: the live messages exact, the expunged ones gone, scrub clean. */
async function expectIntact(root: string, live: Map<number, Buffer>, gone: number[]): Promise<void> {
  const store = await Store.open(root);
  try {
    for (const [uid, bytes] of live) expect((await store.fetch('M', uid)).equals(bytes), `M ${uid}`).toBe(true);
    expect((await store.status('M')).messages).toBe(live.size);
    for (const uid of gone.slice(0, 3)) await expect(store.fetch('M', uid)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expectScrubClean(store);
  } finally {
    await store.close();
  }
}

describe('maintenance through the daemon (CLI beside a running serve)', () => {
  it('compact --dry-run then compact --json: the daemon rewrites the pack, the dead bytes go, every live message stays exact', async () => {
    const { root, live, gone } = await churnedStore(PACKED); // the bodies in a pack, for compaction to rewrite
    const before = packsBytes(root);
    const daemon = await serve(root);
    try {
      const dry = await json(['compact', '--dry-run', '--no-wait'], { store: root });
      expect(dry.dryRun).toBe(true);
      expect(dry.blobsReclaimed).toBe(gone.length);
      expect(packsBytes(root)).toBe(before); // a dry run changes nothing
      const done = await json(['compact', '--no-wait'], { store: root });
      expect(done.dryRun).toBe(false);
      expect(done.packsRewritten.length).toBeGreaterThan(0);
      expect(done.blobsReclaimed).toBe(gone.length);
      expect(done.blobsCopied).toBe(live.size);
      expect(done.bytesAfter).toBeLessThan(done.bytesBefore / 2);
      // the daemon serves the compacted store at once: a live message through it, exact
      const [uid, bytes] = [...live][2]!;
      const fetched = await run(['fetch', 'M', String(uid), '--no-wait'], { store: root });
      expect(fetched.code, fetched.stderr).toBe(0);
      expect(fetched.stdout.equals(bytes)).toBe(true);
      const again = await json(['compact', '--no-wait'], { store: root });
      expect(again.packsRewritten).toEqual([]); // nothing dead left
    } finally {
      await stop(daemon);
    }
    expect(packsBytes(root)).toBeLessThan(before / 2);
    await expectIntact(root, live, gone);
  });

  it('snapshot --json writes a verified snapshot at the current seq; --journal-archive is set and cleared through the daemon', async () => {
    const { root, live, gone } = await churnedStore();
    const archive = join(tempDir('mailstore-archive-'), 'journal');
    mkdirSync(archive);
    const daemon = await serve(root);
    try {
      const consumers = await json(['consumers', '--no-wait'], { store: root });
      const first = await json(['snapshot', '--journal-archive', archive, '--no-wait'], { store: root });
      // the messages were delivered inline: before it retires journal, a snapshot may first move
      // the bodies in that part of the journal into a pack (one record, which it then covers too)
      expect(first.seq).toBeGreaterThanOrEqual(consumers.lastSeq);
      expect(first.seq).toBeLessThanOrEqual(consumers.lastSeq + 1);
      expect(first.records).toBeGreaterThan(0);
      expect(first.journalArchive).toBe(archive);
      expect(existsSync(join(root, 'snapshots', first.name))).toBe(true);
      // a snapshot's retirement may commit the move of inline bodies into a pack after it; the
      // next snapshot covers that record, and once nothing was committed since, one is reused
      let second = await json(['snapshot', '--no-wait'], { store: root });
      for (let i = 0; i < 3 && !second.reused; i++) second = await json(['snapshot', '--no-wait'], { store: root });
      expect(second.seq).toBeGreaterThanOrEqual(first.seq);
      expect(second.reused).toBe(true); // nothing committed since: the same snapshot, verified
      expect(second.journalArchive).toBe(archive); // the setting stayed
      const off = await json(['snapshot', '--journal-archive', 'off', '--no-wait'], { store: root });
      expect(off.journalArchive).toBe(null);
    } finally {
      await stop(daemon);
    }
    expect(readdirSync(join(root, 'snapshots')).length).toBeGreaterThan(0);
    await expectIntact(root, live, gone);
  });

  it('consumers lists the registered feed with its lag; --remove forgets it; removing it again is NOT_FOUND (exit 4)', async () => {
    const { root, live, gone } = await churnedStore();
    const daemon = await serve(root);
    try {
      const listed = await json(['consumers', '--no-wait'], { store: root });
      const feed = listed.consumers.find((c: { name: string }) => c.name === 'test-feed');
      expect(feed).toMatchObject({ name: 'test-feed', seq: 3 });
      expect(feed.lagRecords).toBe(listed.lastSeq - 3);
      expect(await json(['consumers', '--remove', 'test-feed', '--no-wait'], { store: root })).toEqual({ removed: 'test-feed' });
      const after = await json(['consumers', '--no-wait'], { store: root });
      expect(after.consumers.map((c: { name: string }) => c.name)).not.toContain('test-feed');
      const again = await run(['consumers', '--remove', 'test-feed', '--no-wait'], { store: root });
      expect(again.code).toBe(4);
      expect(again.stderr).toMatch(/NOT_FOUND: no consumer named test-feed/);
    } finally {
      await stop(daemon);
    }
    await expectIntact(root, live, gone);
  });

  it('tier status and tier flush on a store without an object store: INVALID (exit 5) across the socket, the daemon unaffected', async () => {
    const { root, live, gone } = await churnedStore();
    const daemon = await serve(root);
    try {
      for (const args of [['tier', 'status', '--json'], ['tier', 'flush', '--json']]) {
        const r = await run([...args, '--no-wait'], { store: root });
        expect(r.code, r.stderr).toBe(5);
        expect(r.stderr).toMatch(/INVALID: the store at .* has no object store/);
      }
      expect((await json(['mailbox', 'status', 'M', '--no-wait'], { store: root })).messages).toBe(live.size);
    } finally {
      await stop(daemon);
    }
    await expectIntact(root, live, gone);
  });
});
