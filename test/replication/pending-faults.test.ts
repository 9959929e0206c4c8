// Failure paths of a synchronous replica's tentative rounds (pending-rounds.ts): its
// REPLICATION-PENDING write or fdatasync fails (EIO, a full disk; the fdatasync inside the real
// writevDurable, in the calling thread: FaultFS raises it there), and a frame of that file is
// damaged when `promote` reads it. Invariants: a change acknowledged with a synchronous replica is
// durable there (committed, or as a valid pending frame); the primary's log names the replica's
// error; a damaged frame that may hold an acknowledged change is never silently dropped, and no
// round after or instead of it is applied.
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join, resolve, sep } from 'node:path';
import { Store } from '../../src/store/store.js';
import type { FileSystem } from '../../src/fs/filesystem.js';
import { startReplica, type ReplicaHandle } from '../../src/replication/replica.js';
import { PENDING_END, PENDING_FILE, PendingRounds, commitPendingRounds, doubtfulDamage, lastSeqOf, readPendingRounds, type TentativeRound } from '../../src/replication/pending-rounds.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { scrub } from '../../src/scrub/scrub.js';
import { limits } from '../../src/limits.js';
import { tmpDir } from '../helpers/tmp.js';
import { msg, startPair, until } from './helpers.js';

/** The seq the replica holds durable: committed, or in a valid pending frame. */
async function held(replica: ReplicaHandle): Promise<number> {
  const { rounds } = await readPendingRounds(replica.store);
  return Math.max(replica.store.changes.lastSeq, ...rounds.map(lastSeqOf));
}

/** A primary with one synchronous replica on `replicaFs`, connected, and one message delivered; `lines`: the primary's log. */
async function syncPair(replicaFs: FileSystem, fallback: 'refuse' | 'async' = 'refuse', syncWaitMs = 20_000) {
  const lines: string[] = [];
  const pair = await startPair({
    primary: { syncReplicas: 1, syncFallback: fallback, syncWaitMs, log: (l) => lines.push(l) },
    replica: { fs: replicaFs },
  });
  try {
    await until(async () => (await pair.primary.status()).replicas.some((r) => r.connected));
    await pair.primaryStore.append('INBOX', msg(0)); // a new pack: an ordinary round; later ones go as tentative rounds
  } catch (error) {
    await pair.close();
    throw error;
  }
  return { pair, lines };
}

describe('a replica whose REPLICATION-PENDING write fails', () => {
  for (const [what, kind, op] of [['fdatasync fails EIO', 'EIO', 'sync'], ['write fails ENOSPC', 'ENOSPC', 'write']] as const) {
    it(`${what}: the primary logs the replica's error, and every acknowledged change is durable on the replica`, async () => {
      const faults = new FaultFileSystem();
      const { pair, lines } = await syncPair(faults);
      const { primaryStore, replica } = pair;
      try {
        const pending = (path: string | undefined) => path?.endsWith(`${sep}${PENDING_FILE}`) ?? false;
        faults.injectAt((info) => info.kind === op && pending(info.path), kind, { times: 3 });
        for (let i = 1; i <= 5; i++) {
          const { uid } = await primaryStore.append('INBOX', msg(i)); // acknowledged: must be durable on the replica now
          expect(await held(replica)).toBeGreaterThanOrEqual((await primaryStore.messageInfo('INBOX', uid)).modseq);
        }
        expect(faults.firedFaults().length).toBe(3);
        expect(lines.some((l) => new RegExp(`reports: .*tentative round \\d+ durable in ${PENDING_FILE}: ${kind}`).test(l))).toBe(true);
        await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 15_000, 'the replica committed everything');
        expect((await replica.store.status('INBOX')).messages).toBe(6);
        await pair.expectIdentical();
      } finally {
        await pair.close();
      }
    }, 60_000);
  }

  for (const fallback of ['refuse', 'async'] as const) {
    it(`with --sync-fallback ${fallback} and the replica failing for longer than the wait: ${fallback === 'refuse' ? 'UNAVAILABLE saying it may have committed' : 'acknowledged and counted unprotected'}`, async () => {
      const faults = new FaultFileSystem();
      const { pair } = await syncPair(faults, fallback, 2_000);
      const { primaryStore, primary } = pair;
      try {
        faults.failAll('EIO', { pathPrefix: join(pair.replica.store.root, sep), ops: ['write', 'sync'] }); // the replica's disk fails: no round is durable there
        const outcome = await primaryStore.append('INBOX', msg(1)).catch((e: unknown) => e);
        if (fallback === 'refuse') {
          expect(outcome).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/may have committed/) });
        } else {
          expect(outcome).toMatchObject({ uid: 2 });
          expect((await primary.status()).unprotectedCommits).toBeGreaterThanOrEqual(1);
        }
        faults.clear();
        // a journal write or fdatasync that failed stops the replica's store (fail-stop: the kernel may
        // have dropped the pages), as it does a primary's: its supervisor starts it again (serve exits
        // non-zero), here the test does; with inline bodies the round's first failed write is the journal's
        await pair.replica.close().catch(() => undefined);
        pair.replica = await startReplica(pair.replicaDir, pair.replicaOptions);
        await until(() => pair.replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 15_000, 'catch-up once the disk works');
        expect((await pair.replica.store.status('INBOX')).messages).toBe(2);
      } finally {
        await pair.close();
      }
    }, 60_000);
  }
});

describe("a replica whose pending round's in-thread fdatasync fails EIO (the real writevDurable, node-fs.ts)", () => {
  // FaultFS raises the fault inside NodeFileHandle.writevDurable, where fdatasyncSync runs, after the
  // frame's real write (test/sim/faultfs.ts duringFlush). The replica does not reconnect within the
  // test (its retry delay is raised), so the primary's --sync-fallback decides alone.
  for (const fallback of ['refuse', 'async'] as const) {
    it(`--sync-fallback ${fallback}: the round is not acknowledged, the primary logs the replica's EIO and ${fallback === 'refuse' ? 'fails the change UNAVAILABLE' : 'acknowledges it, counted unprotected'}; nothing acknowledged is lost`, async () => {
      const tunable = limits as { replicationRetryMinMs: number };
      const savedRetryMs = tunable.replicationRetryMinMs;
      tunable.replicationRetryMinMs = 60_000;
      const faults = new FaultFileSystem();
      let started: Awaited<ReturnType<typeof syncPair>> | undefined;
      try {
        started = await syncPair(faults, fallback, 2_000);
        const { pair, lines } = started;
        const { primaryStore, primary } = pair;
        const acknowledged = new Map([[1, 0], [(await primaryStore.append('INBOX', msg(1))).uid, 1]]); // uid -> msg; a tentative round: the file is preallocated now
        const pendingPath = join(pair.replica.store.root, PENDING_FILE);
        faults.failAll('EIO', { pathPrefix: pendingPath, ops: ['sync'] });
        const outcome = await primaryStore.append('INBOX', msg(2)).catch((e: unknown) => e);
        const failedSeq = primaryStore.changes.lastSeq; // committed on the primary either way
        expect(faults.firedFaults().map((f) => `${f.kind} ${f.code} ${f.path}`)).toEqual([`sync EIO ${pendingPath}`]);
        // a fresh-clone CI at load ~20 once timed out here: its lines are in the error now, to say why
        await until(() => lines.some((l) => new RegExp(`reports: .*tentative round ${failedSeq} durable in ${PENDING_FILE}: .*EIO`).test(l)), 15_000, "the primary's log line")
          .catch((error: Error) => { throw new Error(`${error.message} (round ${failedSeq}; the primary's lines: ${lines.join(' | ')})`); });
        const state = (await primary.status()).replicas;
        expect(state).toHaveLength(1);
        expect(state[0].seq).toBeLessThan(failedSeq); // the replica never acknowledged the round
        if (fallback === 'refuse') {
          expect(outcome).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/may have committed/) });
          expect((await primary.status()).unprotectedCommits).toBe(0);
        } else {
          expect(outcome).toMatchObject({ uid: 3 });
          acknowledged.set(3, 2);
          expect((await primary.status()).unprotectedCommits).toBeGreaterThanOrEqual(1);
          // the reason logged is whichever came first: the round's wait expiring, or the replica's session ending on its error
          expect(lines.some((l) => /replication: UNPROTECTED: .*--sync-fallback async/.test(l))).toBe(true);
        }
        // the disk works again and the replica comes back: every acknowledged change is on both
        tunable.replicationRetryMinMs = savedRetryMs;
        faults.clear();
        await pair.replica.close();
        pair.replica = await startReplica(pair.replicaDir, pair.replicaOptions);
        await until(() => pair.replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 15_000, 'catch-up');
        for (const [uid, i] of acknowledged) {
          expect((await pair.replica.store.fetch('INBOX', uid)).equals(msg(i)), `uid ${uid} on the replica`).toBe(true);
          expect((await primaryStore.fetch('INBOX', uid)).equals(msg(i)), `uid ${uid} on the primary`).toBe(true);
        }
        expect((await pair.replica.store.status('INBOX')).messages).toBe(3); // with refuse, the change that "may have committed" did
        await pair.expectIdentical();
      } finally {
        tunable.replicationRetryMinMs = savedRetryMs;
        await started?.pair.close();
      }
    }, 60_000);
  }
});

/** A round whose records are never applied (they are skipped or refused before): enough for the file's logic. */
const fakeRound = (seq: number): TentativeRound => ({ records: [{ seq, payload: Buffer.from(`record ${seq}`) }], packs: [], tails: [] });

/** The byte offsets of the frames in the file (each [u32 length][u32 crc][body]). */
function frameOffsets(path: string): number[] {
  const bytes = readFileSync(path);
  const out: number[] = [];
  for (let at = 0; at + 8 <= bytes.length && !bytes.subarray(at, at + 8).equals(PENDING_END); at += 8 + bytes.readUInt32BE(at)) out.push(at);
  return out;
}

function flipBodyByte(path: string, frameAt: number): void {
  const bytes = readFileSync(path);
  bytes[frameAt + 8 + 2] ^= 0x40;
  writeFileSync(path, bytes);
}

describe('a commit notice in REPLICATION-PENDING', () => {
  it('is read as the commit of the rounds before it, and a failed fdatasync of it does not fail the close', async () => {
    const faults = new FaultFileSystem();
    const store = await Store.open(tmpDir('pending-notice'), { create: true, fs: faults });
    try {
      const seq = store.changes.lastSeq + 1;
      const pending = new PendingRounds(store);
      await pending.beginSession();
      await pending.add(fakeRound(seq));
      await pending.noteCommitted(seq);
      faults.failAll('EIO', { pathPrefix: join(store.root, PENDING_FILE), ops: ['sync'] });
      await pending.close(); // before: rejected EIO with the handle left open, hiding what the caller was cleaning up after
      expect(faults.firedFaults()).toHaveLength(1);
      faults.clear();
      expect(await readPendingRounds(store)).toMatchObject({ rounds: [{ records: [{ seq }] }], committedThrough: seq });
    } finally {
      await store.close();
    }
  });
});

describe('a damaged REPLICATION-PENDING frame', () => {
  async function storeWithFrames(rounds: TentativeRound[]): Promise<{ store: Store; path: string }> {
    const store = await Store.open(tmpDir('pending'), { create: true });
    await store.createMailbox('INBOX');
    await store.append('INBOX', msg(1));
    const pending = new PendingRounds(store);
    await pending.beginSession();
    for (const round of rounds) await pending.add(round);
    await pending.close();
    return { store, path: join(store.root, PENDING_FILE) };
  }

  it('is read as damage (not as the end), with the valid frames after it', async () => {
    const { store, path } = await storeWithFrames([fakeRound(1), fakeRound(2), fakeRound(3)]);
    try {
      const offsets = frameOffsets(path);
      expect(offsets.length).toBe(3);
      expect((await readPendingRounds(store)).rounds.map(lastSeqOf)).toEqual([1, 2, 3]);
      flipBodyByte(path, offsets[1]);
      const read = await readPendingRounds(store);
      expect(read.rounds.map(lastSeqOf)).toEqual([1]);
      expect(read.damage).toEqual({ offset: offsets[1], following: [expect.objectContaining({ records: [expect.objectContaining({ seq: 3 })] })] });
    } finally {
      await store.close();
    }
  });

  /** A store whose pending file holds one round per seq of `seqs(lastSeq)`, its first frame damaged. */
  async function firstFrameDamaged(seqs: (last: number) => number[]): Promise<{ store: Store; path: string; last: number }> {
    const { store, path } = await storeWithFrames([]);
    const last = store.changes.lastSeq;
    try {
      const pending = new PendingRounds(store);
      await pending.beginSession();
      for (const seq of seqs(last)) await pending.add(fakeRound(seq));
      await pending.close();
      flipBodyByte(path, frameOffsets(path)[0]);
    } catch (error) {
      await store.close();
      throw error;
    }
    return { store, path, last };
  }

  it('that may hold an acknowledged change refuses promotion (CORRUPT) before anything is applied; with quarantine the file is kept and nothing of it applied', async () => {
    // rounds beyond the journal: the damaged one could be a change the old primary acknowledged
    const { store, path, last } = await firstFrameDamaged((seq) => [seq + 1, seq + 2]);
    try {
      const before = readFileSync(path);
      // scrub says so before anything reads it (promote, or a primary promoted since)
      expect((await scrub(store)).findings.filter((f) => f.kind === 'pending-round-damage')).toEqual([{ kind: 'pending-round-damage', offset: 0, afterSeq: last }]);
      const lines: string[] = [];
      const error = await commitPendingRounds(store, (l) => lines.push(l)).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'CORRUPT', message: expect.stringMatching(/damaged at byte 0 .*may hold changes the old primary acknowledged.*--quarantine-damaged-pending/) });
      expect(store.changes.lastSeq).toBe(last);
      expect(readFileSync(path).equals(before)).toBe(true); // kept as it was
      const result = await commitPendingRounds(store, (l) => lines.push(l), { quarantineDamaged: true });
      // into quarantine/, named as the rest of it (before session 49 it stayed in the root as REPLICATION-PENDING.damaged)
      expect(result).toEqual({ committed: 0, damagedFrame: { offset: 0, quarantinedAs: expect.stringMatching(/\/quarantine\/REPLICATION-PENDING-damaged-\d{4}-\d\d-\d\dT[-\dZ]+-\d+$/) } });
      expect(store.changes.lastSeq).toBe(last); // the valid frame after the damaged one does not continue the journal: not applied
      expect(readFileSync(result.damagedFrame!.quarantinedAs).equals(before)).toBe(true);
      expect(lines.some((l) => /DAMAGED: .*kept as .*quarantine/.test(l))).toBe(true);
      expect(existsSync(path)).toBe(false);
      expect(existsSync(`${path}.damaged`)).toBe(false);
      const counted = (await store.stats()).quarantine;
      expect(counted).toEqual({ entries: 1, bytes: before.length });
      // one an older promotion left in the root: still counted, by name, beside quarantine/'s
      writeFileSync(`${path}.damaged`, before);
      expect((await store.stats()).quarantine).toEqual({ entries: 2, bytes: 2 * before.length, outside: ['REPLICATION-PENDING.damaged'] });
      expect((await scrub(store)).summary.quarantine).toMatchObject({ entries: 2, outside: ['REPLICATION-PENDING.damaged'] });
    } finally {
      await store.close();
    }
  });

  it('followed by a valid frame of committed seqs is harmless: promotion goes on', async () => {
    const { store, last } = await firstFrameDamaged((seq) => [seq - 1, seq]);
    try {
      expect((await scrub(store)).findings.filter((f) => f.kind === 'pending-round-damage')).toEqual([]);
      const lines: string[] = [];
      expect(await commitPendingRounds(store, (l) => lines.push(l))).toEqual({ committed: 0 });
      expect(lines.some((l) => /damaged frame at byte 0; a later frame shows its records are committed/.test(l))).toBe(true);
      expect(store.changes.lastSeq).toBe(last);
      expect((await readPendingRounds(store)).rounds).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('a file of the earlier format (appended frames, no end mark) still reads', async () => {
    const { store, path } = await storeWithFrames([fakeRound(1), fakeRound(2)]);
    try {
      const bytes = readFileSync(path);
      const end = frameOffsets(path).length === 2 ? 8 + bytes.readUInt32BE(0) + 8 + bytes.readUInt32BE(8 + bytes.readUInt32BE(0)) : 0;
      writeFileSync(path, bytes.subarray(0, end));
      expect((await readPendingRounds(store))).toEqual({ rounds: [expect.anything(), expect.anything()] });
    } finally {
      await store.close();
    }
  });

  it('the file is preallocated, reused from the start once every round in it committed, and grows while one has not', async () => {
    const tunable = limits as { replicaPendingFileBytes: number };
    const saved = tunable.replicaPendingFileBytes;
    tunable.replicaPendingFileBytes = 4096;
    const { store, path } = await storeWithFrames([]);
    try {
      const big = (seq: number): TentativeRound => ({ records: [{ seq, payload: Buffer.alloc(1500, seq) }], packs: [], tails: [] });
      const pending = new PendingRounds(store);
      await pending.beginSession();
      await pending.add(big(1));
      expect(readFileSync(path).length).toBe(4096); // preallocated: the frame overwrote filler
      expect(readFileSync(path).subarray(4096 - 8).equals(PENDING_END)).toBe(true);
      await pending.add(big(2));
      expect(pending.full).toBe(false);
      await pending.add(big(3));
      expect(pending.full).toBe(true);
      expect(readFileSync(path).length).toBeGreaterThan(4096); // the third frame passed the preallocation
      // round 3 not committed: the next frame is appended, the file grows, every frame reads
      pending.committed(pending.takeThrough(2).length);
      await pending.add(big(4));
      expect((await readPendingRounds(store)).rounds.map(lastSeqOf)).toEqual([1, 2, 3, 4]);
      // all committed: the next frame goes to offset 0 and is the only one read
      pending.committed(pending.takeThrough(4).length);
      const length = readFileSync(path).length;
      await pending.add(big(5));
      expect((await readPendingRounds(store)).rounds.map(lastSeqOf)).toEqual([5]);
      expect(readFileSync(path).length).toBe(length);
      await pending.close();
    } finally {
      tunable.replicaPendingFileBytes = saved;
      await store.close();
    }
  });
});

describe('REPLICATION-PENDING read while a frame is being written', () => {
  const big = (seq: number): TentativeRound => ({ records: [{ seq, payload: Buffer.alloc(4000, seq) }], packs: [], tails: [] });

  // Found by session 49's testers: replica status and scrub read the file without waiting for its
  // writer, so a frame half written (its body not all there yet) read as damage in doubt, a false
  // finding (pending-round-damage, exit 1, "promote with --quarantine-damaged-pending").
  it('waits for the write: no damage, the round read whole (status and scrub)', async () => {
    const store = await Store.open(tmpDir('pending-race'), { create: true });
    try {
      await store.createMailbox('INBOX');
      await store.append('INBOX', msg(1));
      const last = store.changes.lastSeq;
      const writes = pauseFrameWritesHalfWay(store);
      const pending = new PendingRounds(store);
      try {
        await pending.beginSession();
        for (const [n, read] of [[1, async () => doubtfulDamage(await readPendingRounds(store), last)], [2, async () => (await scrub(store)).findings.filter((f) => f.kind === 'pending-round-damage')]] as const) {
          const writing = pending.add(big(last + n));
          const resume = await writes.halfWritten();
          const reading = read();
          await new Promise((resolve) => setTimeout(resolve, 100));
          resume();
          await writing;
          expect(await reading).toEqual(n === 1 ? undefined : []);
        }
        expect((await readPendingRounds(store)).rounds.map(lastSeqOf)).toEqual([last + 1, last + 2]);
      } finally {
        await pending.close();
        writes.restore();
      }
    } finally {
      await store.close();
    }
  });

  // The turns above are this process's: a read-only open takes no lock, and a replica's daemon
  // started after it checked LOCK writes the file from another process. Its half-written frame was
  // reported as damage in doubt (status DAMAGED, a scrub finding).
  it('by a read-only open in another process: the frame being written is not reported as damage (status and scrub)', async () => {
    expect(existsSync(join(dist, 'replication/pending-rounds.js')), 'build first: npm run build').toBe(true);
    const dir = tmpDir('pending-race-process');
    const made = await Store.open(dir, { create: true });
    await made.createMailbox('INBOX');
    await made.append('INBOX', msg(1));
    const last = made.changes.lastSeq;
    await made.close();
    const reader = readOnlyReader(dir);
    let store: Store | undefined;
    try {
      await reader.line(/^open$/, 'the read-only open');
      store = await Store.open(dir); // the writer, started after the reader's open
      const writes = pauseFrameWritesHalfWay(store);
      const pending = new PendingRounds(store);
      try {
        await pending.beginSession();
        for (const [n, ask] of [[1, 'status'], [2, 'scrub']] as const) {
          const writing = pending.add(big(last + n));
          const resume = await writes.halfWritten();
          reader.send(ask);
          await reader.line(/^torn$/, 'the reader holding the half-written frame it read');
          resume();
          await writing;
          reader.send('go'); // its first read saw the frame half written; any later one sees it whole
          expect(JSON.parse((await reader.line(/^answer /, `its ${ask}`)).slice('answer '.length))).toEqual(ask === 'status' ? null : []);
        }
        expect((await readPendingRounds(store)).rounds.map(lastSeqOf)).toEqual([last + 1, last + 2]);
      } finally {
        await pending.close();
        writes.restore();
      }
      // damage that stays is still reported (after the re-reads)
      const path = join(dir, PENDING_FILE);
      const bytes = readFileSync(path);
      bytes[8 + 2] ^= 0x40;
      writeFileSync(path, bytes);
      reader.send('status');
      await reader.line(/^torn$/, 'the reader holding its read');
      reader.send('go');
      expect(JSON.parse((await reader.line(/^answer /, 'its status')).slice('answer '.length))).toEqual({ offset: 0, afterSeq: last });
    } finally {
      reader.kill();
      await store?.close();
    }
  }, 60_000);
});

const dist = resolve(import.meta.dirname, '../../dist/src');

/**
 * A child process holding `dir` open read-only (it prints `open`), answering `status` (doubtfulDamage
 * of its REPLICATION-PENDING read, or null) and `scrub` (its pending-round-damage findings) with
 * `answer JSON`. The first read of the file after each question prints `torn` and returns only once
 * told `go`: the bytes it read stay those of that moment.
 */
function readOnlyReader(dir: string): { send(line: string): void; line(pattern: RegExp, what: string): Promise<string>; kill(): void } {
  const script = `
    import { createInterface } from 'node:readline';
    import { Store } from ${JSON.stringify(join(dist, 'store/store.js'))};
    import { nodeFileSystem } from ${JSON.stringify(join(dist, 'fs/node-fs.js'))};
    import { doubtfulDamage, readPendingRounds } from ${JSON.stringify(join(dist, 'replication/pending-rounds.js'))};
    import { scrub } from ${JSON.stringify(join(dist, 'scrub/scrub.js'))};
    const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
    let hold = false;
    const fs = new Proxy(nodeFileSystem, { get(target, name) {
      const value = Reflect.get(target, name);
      if (name !== 'readFile') return typeof value === 'function' ? value.bind(target) : value;
      return async (path, ...rest) => {
        const bytes = await target.readFile(path, ...rest);
        if (hold && path.endsWith(${JSON.stringify(PENDING_FILE)})) { hold = false; process.stdout.write('torn\\n'); await lines.next(); }
        return bytes;
      };
    } });
    const store = await Store.open(${JSON.stringify(dir)}, { readOnly: true, fs });
    process.stdout.write('open\\n');
    for (;;) {
      const { value, done } = await lines.next();
      if (done) break;
      hold = true;
      const answer = value === 'status' ? doubtfulDamage(await readPendingRounds(store), store.changes.lastSeq) ?? null
        : (await scrub(store)).findings.filter((f) => f.kind === 'pending-round-damage');
      process.stdout.write('answer ' + JSON.stringify(answer) + '\\n');
    }
    await store.close();`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const out: string[] = [];
  let partial = '';
  child.stdout!.on('data', (bytes: Buffer) => {
    const parts = (partial + bytes.toString()).split('\n');
    partial = parts.pop()!;
    out.push(...parts);
  });
  return {
    send: (line) => { child.stdin!.write(`${line}\n`); },
    line: async (pattern, what) => {
      await until(() => out.some((l) => pattern.test(l)) || child.exitCode !== null, 30_000, what);
      const at = out.findIndex((l) => pattern.test(l));
      if (at < 0) throw new Error(`the reader exited (${child.exitCode}) before ${what}`);
      return out.splice(0, at + 1).at(-1)!;
    },
    kill: () => { child.kill('SIGKILL'); },
  };
}

/** The store's REPLICATION-PENDING frame writes stop half way, each until its resume (halfWritten() gives the next). */
function pauseFrameWritesHalfWay(store: Store): { halfWritten(): Promise<() => void>; restore(): void } {
  const fs = store.fs as FileSystem & { open: FileSystem['open'] };
  const open = fs.open.bind(fs);
  const resumes: (() => void)[] = [];
  fs.open = async (path, mode) => {
    const handle = await open(path, mode);
    if (!path.endsWith(PENDING_FILE)) return handle;
    return Object.assign(Object.create(handle) as typeof handle, {
      writevDurable: async (parts: Buffer[], position: number) => {
        const whole = Buffer.concat(parts);
        const half = Math.floor(whole.length / 2);
        await handle.writev([whole.subarray(0, half)], position);
        await new Promise<void>((resume) => resumes.push(resume));
        await handle.writev([whole.subarray(half)], position + half);
        await handle.sync();
      },
    });
  };
  return {
    halfWritten: async () => {
      await until(() => resumes.length > 0, 15_000, 'a frame write paused half way');
      return resumes.shift()!;
    },
    restore: () => { fs.open = open; },
  };
}
