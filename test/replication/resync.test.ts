// A replica behind the primary's retained journal resyncs by itself from a snapshot plus the
// packs: a new replica of a primary whose journal was retired, an old replica whose cursor was
// dropped, a replica process SIGKILLed mid-resync (never a half state: its messages are all or
// nothing), and a crash inside the swap (finished by open) or before the marker (discarded).
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Store } from '../../src/store/store.js';
import { limits } from '../../src/limits.js';
import { initStore, storeIdBytes, verifyIdentity } from '../../src/store/identity.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { RESYNC_MARKER, finishResync, stageResync, stagedSnapshotPath, startStaging } from '../../src/store/resync.js';
import { startPrimary } from '../../src/replication/primary.js';
import { startReplica } from '../../src/replication/replica.js';
import { checkReplica } from '../../src/replication/check.js';
import { readRole } from '../../src/store/role.js';
import { tmpDir } from '../helpers/tmp.js';
import { PACKED } from '../helpers/packed.js';
import { keyFile, logicalState, msg, quiet, pairBehindProxy, samePacks, until } from './helpers.js';

const dist = resolve(import.meta.dirname, '../../dist/src/replication/replica.js');
const small = { packBytesMax: 256 * 1024, journalSegmentBytesMax: 16 * 1024, autoSnapshot: false };

/** Appends `n` messages, then two snapshots with appends between, so the journal's start is retired. */
async function fillAndRetire(store: Store, n: number, pad = 500): Promise<void> {
  if (!(await store.listMailboxes()).some((m) => m.name === 'INBOX')) await store.createMailbox('INBOX');
  for (let i = 0; i < n; i += 10) await Promise.all(Array.from({ length: 10 }, (_, k) => store.append('INBOX', msg(i + k, pad))));
  await store.setFlags('INBOX', [1, 2, 3], { add: ['\\Seen'] });
  await store.expunge('INBOX', [4]);
  await store.snapshot();
  await store.append('INBOX', msg(-1));
  await store.snapshot();
}

describe('replica resync from a snapshot', () => {
  it('a new replica of a primary whose journal start was retired resyncs and then follows; it reads every message, also those whose bodies were inline in records the snapshot covers', async () => {
    const key = keyFile();
    const p = tmpDir('primary');
    const primaryStore = await Store.open(p, { create: true, ...small });
    await fillAndRetire(primaryStore, 200);
    expect(primaryStore.changes.firstSeq).toBeGreaterThan(1);
    // one-file deliveries after the newest snapshot: the resync's fresh snapshot covers their
    // records, and the replica's journal starts after it (every fetch of them was CORRUPT there)
    for (let i = 0; i < 5; i++) await primaryStore.append('INBOX', msg(500 + i));
    const bodies = async (store: Store) => {
      const out: string[] = [];
      for await (const m of store.messages('INBOX')) out.push((await store.fetch('INBOX', m.uid)).toString());
      return out;
    };
    const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    const address = `127.0.0.1:${(await primary.status()).port}`;
    const r = join(tmpDir('replica'), 'r');
    const replica = await startReplica(r, { primary: address, keyFile: key, log: quiet, storeOptions: small });
    try {
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 20_000, 'the resync');
      await primaryStore.append('INBOX', msg(9999)); // rounds go on after the resync
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 20_000, 'a round after the resync');
      expect(await logicalState(replica.store)).toEqual(await logicalState(primaryStore));
      expect(replica.store.changes.firstSeq).toBeGreaterThan(1);
      expect(await bodies(replica.store)).toEqual(await bodies(primaryStore));
    } finally {
      await replica.close();
      await primary.close();
      await primaryStore.close();
    }
    samePacks(p, r);
    expect(existsSync(join(r, RESYNC_MARKER))).toBe(false);
    expect(existsSync(join(r, 'resync'))).toBe(false);
  }, 60_000);

  it('a resync whose stream is reset in the snapshot, then in the packs, then black-holed: the replica starts it again each time and ends identical', async () => {
    const logs: string[] = [];
    const pair = await pairBehindProxy({
      open: (dir) => Store.open(dir, { create: true, ...small }),
      fill: (store) => fillAndRetire(store, 300, 2000),
      primary: { log: (line) => logs.push(line) },
      // the new replica's first connection takes the identity; each reset hits a resync stream:
      // the first in its snapshot, the next (the connection after it) in its packs
      beforeReplica: (proxy) => proxy.resetAfter('downstream', 40_000, 400_000),
      replica: { storeOptions: small },
    });
    const { key, primaryStore, proxy, replica } = pair;
    try {
      await until(() => proxy.connections() >= 3, 10_000, 'a connection after the first reset');
      await until(() => proxy.connections() >= 4, 10_000, 'a connection after the second reset');
      proxy.blackhole();
      await new Promise((done) => setTimeout(done, 500));
      proxy.restore();
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 30_000, 'the resync through the faults');
      await primaryStore.append('INBOX', msg(9999));
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 20_000, 'a round after it');
      expect(await logicalState(replica.store)).toEqual(await logicalState(primaryStore));
      expect((await checkReplica(replica.store, { primary: proxy.address, keyFile: key })).identical).toBe(true);
      expect(logs.filter((line) => /resyncing it from snapshot/.test(line)).length).toBeGreaterThanOrEqual(3); // begun again after each fault
    } finally {
      await pair.end();
    }
    samePacks(primaryStore.root, pair.replicaDir);
  }, 60_000);

  it("a resync whose snapshot takes the primary longer than the replica's silence limit completes: the primary pings meanwhile (it was started again and again)", async () => {
    const saved = limits.replicationPingMs;
    (limits as { replicationPingMs: number }).replicationPingMs = 100; // the replica gives up after 300 ms of silence
    const key = keyFile();
    const primaryStore = await Store.open(tmpDir('primary'), { create: true, ...small });
    await fillAndRetire(primaryStore, 100);
    const snapshot = primaryStore.snapshot.bind(primaryStore);
    primaryStore.snapshot = (async (...args: Parameters<typeof snapshot>) => {
      await new Promise((done) => setTimeout(done, 1000)); // a big store's snapshot: ~54 s at 1M messages
      return snapshot(...args);
    }) as typeof snapshot;
    const logs: string[] = [];
    const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: (line) => logs.push(line) });
    const replica = await startReplica(join(tmpDir('replica'), 'r'), { primary: `127.0.0.1:${(await primary.status()).port}`, keyFile: key, log: quiet, storeOptions: small });
    try {
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 15_000, 'the resync');
      expect(logs.filter((line) => /resyncing it from snapshot/.test(line))).toHaveLength(1);
      expect(await logicalState(replica.store)).toEqual(await logicalState(primaryStore));
    } finally {
      (limits as { replicationPingMs: number }).replicationPingMs = saved;
      await replica.close();
      await primary.close();
      await primaryStore.close();
    }
  }, 30_000);

  it('a resync after a compaction removed packs: the replica gets only packs that exist and ends byte-identical', async () => {
    const key = keyFile();
    const p = tmpDir('primary');
    const primaryStore = await Store.open(p, { create: true, ...small });
    await fillAndRetire(primaryStore, 300, 2000);
    await primaryStore.expunge('INBOX', Array.from({ length: 250 }, (_, i) => i + 10));
    const compacted = await primaryStore.compact();
    expect(compacted.packsRemoved.length).toBeGreaterThan(0);
    const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    const address = `127.0.0.1:${(await primary.status()).port}`;
    const r = join(tmpDir('replica'), 'r');
    const replica = await startReplica(r, { primary: address, keyFile: key, log: quiet, storeOptions: small });
    try {
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 20_000, 'the resync');
      expect(await checkReplica(replica.store, { primary: address, keyFile: key })).toMatchObject({ identical: true, differences: [] });
      expect(await logicalState(replica.store)).toEqual(await logicalState(primaryStore));
    } finally {
      await replica.close();
      await primary.close();
      await primaryStore.close();
    }
    samePacks(p, r);
  }, 60_000);

  it('an old replica whose cursor was dropped resyncs over its state; its old journal goes to quarantine', async () => {
    const key = keyFile();
    const p = tmpDir('primary');
    const primaryStore = await Store.open(p, { create: true, ...small, ...PACKED }); // a compaction must remove a pack the old replica holds
    await primaryStore.createMailbox('INBOX');
    const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    const address = `127.0.0.1:${(await primary.status()).port}`;
    const r = join(tmpDir('replica'), 'r');
    try {
      let replica = await startReplica(r, { primary: address, keyFile: key, log: quiet, storeOptions: small });
      await primaryStore.append('INBOX', msg(1));
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 20_000, 'the first catch-up');
      const oldSeq = replica.store.changes.lastSeq;
      const nodeId = replica.store.replication().role()!.nodeId;
      await replica.close();
      await until(async () => (await primary.status()).replicas.every((x) => !x.connected), 10_000, 'the primary to see the replica gone');
      await new Promise((done) => setTimeout(done, 100)); // its last cursor write
      // the admin dropped the dead replica's cursor, and retirement went past it
      expect(await primaryStore.changes.remove(`replica-${nodeId}`)).toBe(true);
      await fillAndRetire(primaryStore, 150);
      expect(primaryStore.changes.firstSeq).toBeGreaterThan(oldSeq + 1);
      // and a compaction removed packs the old replica still holds
      await primaryStore.expunge('INBOX', Array.from({ length: 140 }, (_, i) => i + 2));
      const removed = (await primaryStore.compact()).packsRemoved;
      const held = readdirSync(join(r, 'packs')).filter((n) => n.endsWith('.pack')).map((n) => Number.parseInt(n, 10));
      expect(removed.some((pack) => held.includes(pack)), 'the old replica holds a pack the primary removed').toBe(true);
      replica = await startReplica(r, { primary: address, keyFile: key, log: quiet, storeOptions: small });
      try {
        await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 20_000, 'the resync');
        expect(await logicalState(replica.store)).toEqual(await logicalState(primaryStore));
        expect((await readRole(nodeFileSystem, r))?.role).toBe('replica');
        expect(replica.store.replication().role()!.nodeId).toBe(nodeId);
      } finally {
        await replica.close();
      }
      expect(readdirSync(join(r, 'quarantine')).some((n) => n.startsWith('journal-before-resync'))).toBe(true);
    } finally {
      await primary.close();
      await primaryStore.close();
    }
    samePacks(p, r);
  }, 60_000);

  it('a replica process SIGKILLed mid-resync holds all of the state or none of it, and finishes on restart', async () => {
    expect(existsSync(dist), 'build first: npx tsc -p .').toBe(true);
    const key = keyFile();
    const p = tmpDir('primary');
    const primaryStore = await Store.open(p, { create: true, ...small });
    const total = 1500;
    await fillAndRetire(primaryStore, total, 3000);
    const expected = (await primaryStore.status('INBOX')).messages;
    const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    const address = `127.0.0.1:${(await primary.status()).port}`;
    const r = join(tmpDir('replica'), 'r');
    const outcomes: number[] = [];
    /** A child replica of `dir`; resolves when it printed a line matching `stop` and `delayMs` passed, then SIGKILLs it. */
    const killed = async (dir: string, stop: RegExp, delayMs: (startedAt: number) => number): Promise<number> => {
      const script = `import { startReplica } from ${JSON.stringify(dist)};
        await startReplica(${JSON.stringify(dir)}, { primary: ${JSON.stringify(address)}, keyFile: ${JSON.stringify(key)}, log: (l) => process.stdout.write(l + '\\n'), storeOptions: ${JSON.stringify(small)} });`;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      let startedAt = 0;
      child.stdout!.on('data', (b: Buffer) => { out += b.toString(); if (!startedAt && /resyncing from/.test(out)) startedAt = Date.now(); });
      const exited = new Promise((done) => child.once('exit', done));
      await until(() => stop.test(out), 30_000, `the child to print ${stop}`);
      await new Promise((done) => setTimeout(done, delayMs(startedAt)));
      child.kill('SIGKILL');
      await exited;
      return Date.now() - startedAt;
    };
    let whole = 0;
    try {
      // a whole resync of another directory measures how long one takes on this machine
      let seenResyncing = false;
      const polling = setInterval(() => void primary.status().then((st) => { if (st.replicas.some((x) => x.resyncingTo !== undefined)) seenResyncing = true; }), 10);
      whole = await killed(join(tmpDir('calibrate'), 'r'), /resync installed/, () => 0);
      clearInterval(polling);
      expect(seenResyncing, 'replica status on the primary shows the replica resyncing').toBe(true);
      for (const fraction of [0, 0.3, 0.6, 0.9, 1]) {
        if (fraction < 1) await killed(r, /resyncing from|at seq [1-9]/, (startedAt) => Math.max(0, startedAt + fraction * whole - Date.now()));
        else await killed(r, /resync installed|at seq [1-9]/, () => 0);
        // a direct open finishes a staged swap or discards a staging: all or nothing
        const replica = await Store.open(r);
        try {
          const has = (await replica.listMailboxes()).some((m) => m.name === 'INBOX') ? (await replica.status('INBOX')).messages : 0;
          expect([0, expected], `messages after a kill at ${fraction} of a resync`).toContain(has);
          if (has > 0) expect(await logicalState(replica)).toEqual(await logicalState(primaryStore));
          outcomes.push(has);
        } finally {
          await replica.close();
        }
      }
      const replica = await startReplica(r, { primary: address, keyFile: key, log: quiet, storeOptions: small });
      try {
        await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 30_000, 'the resync after the kills');
        expect(await logicalState(replica.store)).toEqual(await logicalState(primaryStore));
      } finally {
        await replica.close();
      }
    } finally {
      await primary.close();
      await primaryStore.close();
    }
    samePacks(p, r);
    expect(outcomes.length).toBe(5);
    expect(outcomes[0]).toBe(0);
    expect(outcomes[4]).toBe(expected);
    if (process.env.RESYNC_VERBOSE) console.log('messages after each kill', outcomes, 'a whole resync', whole, 'ms');
  // Its hang guards are its waits' own (seven of 30 s, on six child replicas and the last resync);
  // 120 s was a speed: under a dd+fdatasync loop (load 15-20) the test took 117 s in the suite and
  // 108 s alone (a 1,500-message fill in 150 group commits, seven node children)
  }, 300_000);
});

describe('the resync swap under crashes', () => {
  /** A standalone store A and an empty clone B holding A's packs and A's newest snapshot staged. */
  async function staged(): Promise<{ a: string; b: string; seq: number; name: string; state: unknown }> {
    const a = tmpDir('a');
    const store = await Store.open(a, { create: true, ...small });
    await fillAndRetire(store, 60);
    const snap = await store.snapshot();
    const state = await logicalState(store);
    await store.close();
    const b = join(tmpDir('b'), 'b');
    await initStore(nodeFileSystem, b, readFileSync(join(a, 'STORE')));
    const fresh = await Store.open(b);
    await fresh.close();
    for (const n of readdirSync(join(a, 'packs'))) cpSync(join(a, 'packs', n), join(b, 'packs', n));
    await startStaging(nodeFileSystem, b);
    cpSync(join(a, 'snapshots', snap.name), stagedSnapshotPath(b));
    return { a, b, seq: snap.seq, name: snap.name, state };
  }

  async function stage(b: string, seq: number, name: string): Promise<void> {
    const identity = await verifyIdentity(nodeFileSystem, b);
    await stageResync(nodeFileSystem, b, storeIdBytes(identity), identity.storeId, { seq, snapshotName: name, meta: [] }, 16 * 1024);
  }

  /** An open of `b` finishes the staged swap: the snapshot's seq and state, the marker gone. */
  async function expectFinishedByOpen(b: string, seq: number, state: unknown): Promise<void> {
    const store = await Store.open(b);
    try {
      expect(store.health.findings.join('\n')).toMatch(/resync .* was finished/);
      expect(store.changes.lastSeq).toBe(seq);
      expect(await logicalState(store)).toEqual(state);
    } finally {
      await store.close();
    }
    expect(existsSync(join(b, RESYNC_MARKER))).toBe(false);
  }

  it('a crash between the journal and the index swap is finished by open', async () => {
    const { b, seq, name, state } = await staged();
    await stage(b, seq, name);
    expect(existsSync(join(b, RESYNC_MARKER))).toBe(true);
    // the crash: the old journal moved aside and the staged one renamed in; the index not yet
    mkdirSync(join(b, 'quarantine'), { recursive: true });
    renameSync(join(b, 'journal'), join(b, 'quarantine', 'journal-crashed'));
    renameSync(join(b, 'resync', 'journal'), join(b, 'journal'));
    await expectFinishedByOpen(b, seq, state);
    expect(await finishResync(nodeFileSystem, b)).toBeUndefined();
  });

  it('a crash between moving the old journal aside and renaming the staged one in (no journal/ at all) is finished by open; a read-only open refuses it as a resync, not as a missing journal', async () => {
    const { b, seq, name, state } = await staged();
    await stage(b, seq, name);
    // the crash: swapIn moved the live journal aside and died before the rename
    mkdirSync(join(b, 'quarantine'), { recursive: true });
    renameSync(join(b, 'journal'), join(b, 'quarantine', 'journal-before-resync-crashed'));
    await expect(Store.open(b, { readOnly: true })).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await expectFinishedByOpen(b, seq, state);
    expect(existsSync(join(b, 'journal', 'STORE-ID'))).toBe(true);
  });

  it('without the resync marker a missing journal/ is still UNMOUNTED: nothing is finished from a staging', async () => {
    const { b } = await staged();
    mkdirSync(join(b, 'resync', 'journal'), { recursive: true });
    cpSync(join(b, 'journal', 'STORE-ID'), join(b, 'resync', 'journal', 'STORE-ID'));
    renameSync(join(b, 'journal'), join(b, 'journal-moved'));
    await expect(Store.open(b)).rejects.toMatchObject({ code: 'UNMOUNTED' });
    expect(existsSync(join(b, 'resync', 'journal', 'STORE-ID'))).toBe(true);
  });

  it('a staging without its marker is discarded on open; the older state stays whole', async () => {
    const { b } = await staged();
    const store = await Store.open(b);
    try {
      expect(await store.listMailboxes()).toEqual([]);
      expect(store.changes.lastSeq).toBe(0);
    } finally {
      await store.close();
    }
    expect(existsSync(join(b, 'resync'))).toBe(false);
  });

  it('a read-only open of a replica with a staged swap refuses (UNAVAILABLE) instead of serving a half state', async () => {
    const { b, seq, name } = await staged();
    await stage(b, seq, name);
    await expect(Store.open(b, { readOnly: true })).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });
});
