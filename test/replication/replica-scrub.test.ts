// scrub on a replica: the nightly check-only scrub (mailstore-scrub.timer) runs on every node, so a
// replica's scrub holds its writer (as a primary's does) without being taken for a client write.
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { scrub } from '../../src/scrub/scrub.js';
import { Store } from '../../src/store/store.js';
import { startPrimary } from '../../src/replication/primary.js';
import { startReplica } from '../../src/replication/replica.js';
import { INLINE_GAP_FILE } from '../../src/replication/inline-gap.js';
import { storedReplicationStatus } from '../../src/replication/status.js';
import { tmpDir } from '../helpers/tmp.js';
import { keyFile, msg, quiet, startPair, until } from './helpers.js';
import { requireBuilt, run } from '../cli/helpers.js';

describe('scrub on a replica', () => {
  it('runs check-only, whole and scoped, and finds damage there', async () => {
    const pair = await startPair({ fill: async (store) => { for (let i = 0; i < 20; i++) await store.append('INBOX', msg(i, 40_000)); } });
    try {
      await until(() => pair.replica.store.changes.lastSeq === pair.primaryStore.changes.lastSeq, 15_000, 'the replica to catch up');
      const whole = await scrub(pair.replica.store);
      expect(whole.summary.damage).toBe(0);
      expect(whole.summary.blobsVerified).toBeGreaterThanOrEqual(20);
      expect((await scrub(pair.replica.store, { mailbox: 'INBOX' })).summary.damage).toBe(0);
      // a byte of a body flipped in the replica's own copy: its scrub says so
      const pack = join(pair.replicaDir, 'packs', readdirSync(join(pair.replicaDir, 'packs')).find((n) => n.endsWith('.pack'))!);
      const bytes = readFileSync(pack);
      const at = bytes.indexOf('body 3 ');
      expect(at).toBeGreaterThan(0);
      bytes[at] ^= 0x20;
      writeFileSync(pack, bytes);
      expect((await scrub(pair.replica.store)).summary.damage).toBeGreaterThan(0);
    } finally {
      await pair.close();
    }
  });
});

describe('the scrub command on a damaged replica', () => {
  // Found by an outside test (session 48): it said "run 'mailstore scrub --repair --source COPY' to
  // heal", which a replica refuses (READ_ONLY_REPLICA, exit 3); what heals one is a new copy of its primary.
  it('names what heals a replica instead of a repair it refuses', async () => {
    requireBuilt();
    const pair = await startPair({ fill: async (store) => { for (let i = 0; i < 3; i++) await store.append('INBOX', msg(i, 40_000)); } });
    try {
      await until(() => pair.replica.store.changes.lastSeq === pair.primaryStore.changes.lastSeq, 15_000, 'the replica to catch up');
      await pair.replica.close(); // the CLI opens the directory itself
      const pack = join(pair.replicaDir, 'packs', readdirSync(join(pair.replicaDir, 'packs')).find((n) => n.endsWith('.pack'))!);
      const bytes = readFileSync(pack);
      bytes[bytes.indexOf('body 1 ')] ^= 0x20;
      writeFileSync(pack, bytes);
      const checked = await run(['scrub'], { store: pair.replicaDir });
      expect(checked.code).toBe(1);
      expect(checked.stdout.toString()).toMatch(/this store is a replica, which takes no repair .*start the replica again in an empty one/);
      expect(checked.stdout.toString()).not.toMatch(/to heal/);
      const repair = await run(['scrub', '--repair', '--source', pair.address, '--replication-key', pair.key], { store: pair.replicaDir });
      expect(repair.code).toBe(3); // what the old hint led to
      expect(repair.stderr.toString()).toMatch(/READ_ONLY_REPLICA/);
      // a damaged consumer cursor too (a finding of its own): the hint asks the role alone, not the
      // replication status, which read every cursor (it failed, and the hint was left out)
      mkdirSync(join(pair.replicaDir, 'consumers'), { recursive: true });
      writeFileSync(join(pair.replicaDir, 'consumers', 'indexer'), 'garbage\n');
      const withCursor = await run(['scrub'], { store: pair.replicaDir });
      expect(withCursor.code).toBe(1);
      expect(withCursor.stdout.toString()).toMatch(/consumers\/indexer/);
      expect(withCursor.stdout.toString()).toMatch(/this store is a replica, which takes no repair/);
      // its repair: refused READ_ONLY_REPLICA before anything, saying what heals it (before session 49
      // it failed CORRUPT, exit 6, on that cursor: repair's gate read store.stats(), which reads every
      // cursor, and the blob damage was copied into quarantine/ first)
      const quarantined = readdirSync(join(pair.replicaDir, 'quarantine'));
      for (const args of [['scrub', '--repair'], ['scrub', '--repair', '--source', pair.address, '--replication-key', pair.key]]) {
        const refused = await run(args, { store: pair.replicaDir });
        expect(refused.stderr.toString()).toMatch(/READ_ONLY_REPLICA: .*a replica of .*which takes no repair; nothing was changed.*start the replica again in an empty one/);
        expect(refused.code).toBe(3);
      }
      expect(readdirSync(join(pair.replicaDir, 'quarantine'))).toEqual(quarantined);
    } finally {
      await pair.primary.close();
      await pair.primaryStore.close();
    }
  }, 60_000);
});

/**
 * A primary whose resync moves no inline bodies (as before session 32), with 3 of them in records
 * the resync's snapshot covers, and a new replica of it in `r`, which lacks their bodies.
 */
async function replicaOfPrimaryBeforeSession32() {
  const small = { packBytesMax: 256 * 1024, journalSegmentBytesMax: 16 * 1024, autoSnapshot: false, inlineBodyBytesMax: 4096 };
  const primaryStore = await Store.open(tmpDir('old-primary'), { create: true, ...small });
  await primaryStore.createMailbox('INBOX');
  for (let i = 0; i < 60; i++) await primaryStore.append('INBOX', msg(i, 500));
  await primaryStore.snapshot();
  await primaryStore.append('INBOX', msg(-1));
  await primaryStore.snapshot(); // the journal's start retired: a new replica is resynced
  for (let i = 0; i < 3; i++) await primaryStore.append('INBOX', msg(500 + i)); // inline, below the resync's snapshot
  expect(primaryStore.changes.firstSeq).toBeGreaterThan(1);
  // what a primary before session 32 does at a resync: no move of the inline bodies its snapshot covers
  const host = primaryStore.replication.bind(primaryStore);
  primaryStore.replication = () => ({ ...host(), moveInlineBodies: async () => undefined });
  const key = keyFile();
  const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
  const address = `127.0.0.1:${(await primary.status()).port}`;
  const r = join(tmpDir('replica'), 'r');
  const pair = {
    primaryStore, primary, r, replica: undefined as Awaited<ReturnType<typeof startReplica>> | undefined,
    /** Starts the replica (resynced the first time) and waits for it to hold what the primary has. */
    follow: async (what: string) => {
      pair.replica ??= await startReplica(r, { primary: address, keyFile: key, log: quiet, storeOptions: small });
      await until(() => pair.replica!.store.changes.lastSeq === primaryStore.changes.lastSeq, 20_000, what);
    },
    closeReplica: async () => { await pair.replica?.close(); pair.replica = undefined; },
    close: async () => { await pair.closeReplica(); await primary.close(); await primaryStore.close(); },
  };
  return pair;
}

describe('the scrub command on a replica a primary before session 32 resynced', () => {
  // Found by an outside upgrade test (session 49): a new replica of this code resynced from a
  // primary of 8fc479f (session 29), whose resync moves no inline bodies into packs, lacks the
  // bodies inline in records its snapshot covers (docs/FORMAT.md, "Compatibility", known limits).
  // Its scrub found them missing but said to start the replica again in an empty one: from that
  // primary the new copy lacks them again, and the replica looks as promotable as any.
  it('says to let the primary move those bodies (a snapshot there), which heals the replica, not to copy the same primary again', async () => {
    requireBuilt();
    const pair = await replicaOfPrimaryBeforeSession32();
    const { primaryStore, r } = pair;
    try {
      await pair.follow('the resync');
      await pair.closeReplica(); // the CLI opens the directory itself
      const checked = await run(['scrub'], { store: r });
      expect(checked.code).toBe(1);
      const out = checked.stdout.toString();
      expect(out).toMatch(/blob-missing +journal record \d+ \(inline body\)/);
      expect(out).toMatch(/its primary has not yet sent them in a pack .*before session 32.*run 'mailstore snapshot' on the primary.*Do not promote this replica until its scrub is clean/);
      expect(out).not.toMatch(/it copies its primary afresh/);
      // what it says heals it: the primary's snapshots move the bodies, and the replica gets them
      await pair.follow('the replica again');
      await primaryStore.snapshot();
      await primaryStore.snapshot();
      await pair.follow('the moves');
      await pair.closeReplica();
      const again = await run(['scrub'], { store: r });
      expect(again.stdout.toString()).toMatch(/^clean/m);
      expect(again.code).toBe(0);
    } finally {
      await pair.close();
    }
  }, 90_000);
});

describe('a replica whose resync left out inline bodies, before any scrub', () => {
  // Found by session 49's testers: such a replica (resynced by a primary before session 32) looked
  // healthy to 'replica status' and 'replica check' (identical: the index only) and was promoted,
  // its messages CORRUPT for good. The resync now notes the gap (REPLICA-INLINE-GAP); status and
  // check say MISSING (exit 1), promote refuses it without --force, before it fences anyone.
  it('status and check say MISSING, promote is REFUSED and fences nothing; once the primary snapshots, the note goes and promote runs', async () => {
    requireBuilt();
    const pair = await replicaOfPrimaryBeforeSession32();
    const { primaryStore, r } = pair;
    try {
      await pair.follow('the resync');
      expect(existsSync(join(r, INLINE_GAP_FILE))).toBe(true);
      // status (and check) read the note's count: before, each scanned every blob entry of the index while the note was there
      // the resync counted 4; the round after it moves one of them (blob.relocate), and the replica counts again
      await until(() => JSON.parse(readFileSync(join(r, INLINE_GAP_FILE), 'utf8').split('\n')[0]).blobs === 3, 10_000, 'the count after the move');
      const scans = vi.spyOn(pair.replica!.store.replication().db, 'entryBatches');
      expect(await storedReplicationStatus(pair.replica!.store)).toMatchObject({ role: 'replica', inlineBodiesMissing: 3 });
      expect(scans).not.toHaveBeenCalled();
      scans.mockRestore();
      // a replica's daemon: refused before its fence, the primary still takes mail, the replica follows on
      const refused = await pair.replica!.promote().catch((error: unknown) => error);
      expect(refused).toMatchObject({ code: 'REFUSED', message: expect.stringMatching(/^this replica lacks 3 message bodies .*run 'mailstore snapshot' on the primary.*--force$/) });
      await primaryStore.append('INBOX', msg(900));
      await pair.follow('the replica to follow on');
      await pair.closeReplica();
      const status = await run(['replica', 'status'], { store: r });
      expect(status.code).toBe(1);
      expect(status.stdout.toString()).toMatch(/^MISSING: 3 message bodies this replica's index refers to inside journal records it never received/m);
      expect(JSON.parse((await run(['replica', 'status', '--json'], { store: r })).stdout.toString())).toMatchObject({ role: 'replica', inlineBodiesMissing: 3 });
      const check = await run(['replica', 'check'], { store: r });
      expect(check.code).toBe(1);
      expect(check.stdout.toString()).toMatch(/: identical .*\nMISSING: 3 message bodies/);
      const promote = await run(['promote'], { store: r });
      expect(promote.code).toBe(3);
      expect(promote.stderr.toString()).toMatch(/REFUSED: this replica lacks 3 message bodies/);
      expect(JSON.parse((await run(['replica', 'status', '--json'], { store: r })).stdout.toString())).toMatchObject({ role: 'replica' });
      const copy = join(tmpDir('replica-copy'), 'r'); // promoted with --force below, once the primary is gone
      cpSync(r, copy, { recursive: true });
      // what heals it: the primary's snapshots move the bodies; the next look finds none missing and removes the note
      await pair.follow('the replica again');
      await primaryStore.snapshot();
      await primaryStore.snapshot();
      await pair.follow('the moves');
      await until(() => !existsSync(join(r, INLINE_GAP_FILE)), 10_000, 'the count after the moves'); // counted again as the moves are applied
      await pair.closeReplica();
      await pair.primary.close();
      const healed = await run(['replica', 'status'], { store: r });
      expect(healed.stdout.toString()).not.toMatch(/MISSING/);
      expect(healed.code).toBe(0);
      const promoted = await run(['promote', '--json'], { store: r });
      expect(promoted.code, promoted.stderr.toString()).toBe(0);
      expect(existsSync(join(r, INLINE_GAP_FILE))).toBe(false);
      const forced = await run(['promote', '--force'], { store: copy });
      expect(forced.code, forced.stderr.toString()).toBe(0);
      expect(forced.stderr.toString()).toMatch(/WARNING: promoted with --force: 3 message bodies this store never received read CORRUPT/);
    } finally {
      await pair.close();
    }
  }, 120_000);
});
