// A seeded, mixed mail workload run against a store on FaultFS, mirrored step by step in the
// reference model. It records, for every operation, the op-log position when it was submitted
// and when it was acknowledged, so each crash point knows which model states a recovered store
// may show: at least everything acknowledged, at most everything submitted, all-or-nothing each.
import { expect } from 'vitest';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { Rng } from './faultfs.js';
import type { FaultFileSystem } from './faultfs.js';
import { Model, dumpStore, dumpDiff } from './model.js';

export interface OpTrace {
  label: string;
  /** ffs.logLength when the operation was handed to the store. */
  submittedAt: number;
  /** ffs.logLength when its promise resolved. */
  ackedAt: number;
}

export interface WorkloadRun {
  /** states[0]: the empty store; states[i + 1]: after ops[i]. */
  states: string[];
  ops: OpTrace[];
  /** index/ copies taken with the store closed, and the log position they reflect. */
  snapshots: { atLog: number; dir: string }[];
  logLength: number;
  storeOptions: { packBytesMax: number; journalSegmentBytesMax: number; inlineBodyBytesMax?: number };
  /** store.snapshot() calls (each followed by journal retirement) made during the run. */
  indexSnapshots: number;
}

export interface WorkloadOptions {
  dir: string;
  ffs: FaultFileSystem;
  seed: number;
  steps: number;
  snapshotRoot: string;
  /** Compare the live store with the model after every step (proves the model). */
  verifyLive?: boolean;
  packBytesMax?: number;
  journalSegmentBytesMax?: number;
  /** Store bodies up to this size inside their journal record (StoreOptions.inlineBodyBytesMax; default 0: every body to a pack). */
  inlineBodyBytesMax?: number;
  /** Compact the packs at the steps that otherwise do nothing. */
  compact?: boolean;
}

const NAMES = ['INBOX', 'Sent', 'Trash', 'Archive', 'Archive/2024', 'Archive/2025', 'lists/dev', 'lists/ops'];
const USERS = ['alice', 'bob', 'anyone'];
const FLAGS = ['\\Seen', '\\Flagged', '\\Answered', '\\Deleted', 'Junk', '$Label1'];
const RIGHTS = ['lr', 'lrs', 'lrswi', 'lrswipkxtean', ''];
const DATE_BASE = Date.UTC(2024, 0, 1);

interface Planned {
  label: string;
  run: (store: Store) => Promise<unknown>;
  /** Checks the store's result against what the model predicted. */
  check?: (result: unknown) => void;
}

/** Message bodies: mostly small, some spanning sectors, a few bigger than a pack; 20 % duplicates. */
function bodyMaker(rng: Rng) {
  const made: Buffer[] = [];
  return (): Buffer => {
    if (made.length > 0 && rng.chance(0.2)) return rng.pick(made);
    const roll = rng.next();
    const size = roll < 0.7 ? 80 + rng.int(1500) : roll < 0.95 ? 2000 + rng.int(20_000) : 70_000 + rng.int(20_000);
    const head = Buffer.from(`From: sim@example.org\r\nSubject: message ${made.length}\r\n\r\n`);
    const body = Buffer.alloc(size);
    for (let i = 0; i < size; i++) body[i] = 32 + ((i * 7 + made.length * 13 + (i >> 5)) % 90);
    const bytes = Buffer.concat([head, body]);
    made.push(bytes);
    return bytes;
  };
}

export async function runWorkload(options: WorkloadOptions): Promise<WorkloadRun> {
  const { dir, ffs } = options;
  const rng = new Rng(options.seed);
  const storeOptions = {
    packBytesMax: options.packBytesMax ?? 48 * 1024, journalSegmentBytesMax: options.journalSegmentBytesMax ?? 6 * 1024,
    // bodies in packs unless a run asks for inline bodies (crash-explorer-inline): the other
    // explorers keep covering the two-file commit now that inline bodies are the default
    inlineBodyBytesMax: options.inlineBodyBytesMax ?? 0,
  };
  const nextBody = bodyMaker(rng);
  let dateCounter = 0;
  let renameCounter = 0;
  let snapshotsTaken = 0;

  const init = await Store.open(dir, { create: true });
  await init.close();
  await ffs.startRecording(dir, { exclude: ['index'] });
  const snapshots: WorkloadRun['snapshots'] = [];
  const snapshot = async () => {
    const target = join(options.snapshotRoot, `snap-${snapshots.length}`);
    await fsp.mkdir(target, { recursive: true });
    await ffs.snapshotExcluded(target);
    snapshots.push({ atLog: ffs.logLength, dir: target });
  };
  await snapshot();
  let store = await Store.open(dir, { fs: ffs, ...storeOptions });

  const model = new Model();
  const states = [model.dump()];
  const ops: OpTrace[] = [];

  const verify = async (where: string) => {
    if (!options.verifyLive) return;
    const live = await dumpStore(store);
    expect(live, `live store vs model after ${where}: ${dumpDiff(live, states[states.length - 1])}`).toBe(states[states.length - 1]);
  };

  /** One operation alone: submitted, awaited, then the model follows (creates need the result). */
  const sequential = async (label: string, run: (s: Store) => Promise<unknown>, follow: (result: unknown) => void) => {
    const submittedAt = ffs.logLength;
    const result = await run(store);
    ops.push({ label, submittedAt, ackedAt: ffs.logLength });
    follow(result);
    states.push(model.dump());
    await verify(label);
  };

  /** Several operations in flight at once (one group commit): planned on the model in order. */
  const concurrent = async (planned: Planned[]) => {
    const traces: OpTrace[] = [];
    for (const p of planned) {
      // states were already pushed by the planner for each op
      traces.push({ label: p.label, submittedAt: -1, ackedAt: -1 });
    }
    const promises = planned.map((p, i) => {
      traces[i].submittedAt = ffs.logLength;
      return p.run(store).then((result) => {
        traces[i].ackedAt = ffs.logLength;
        return result;
      });
    });
    const results = await Promise.all(promises);
    planned.forEach((p, i) => p.check?.(results[i]));
    ops.push(...traces);
    expect(states.length, 'one model state per planned op').toBe(ops.length + 1);
    await verify(planned.map((p) => p.label).join(', '));
  };

  const boxNames = () => [...model.boxes.keys()];
  const someUids = (name: string): number[] => {
    const uids = [...model.box(name).messages.keys()];
    const picked = uids.filter(() => rng.chance(0.35));
    if (rng.chance(0.15)) picked.push(model.box(name).uidNext + 5); // never existed: ignored
    return picked.length > 0 ? picked : uids.slice(0, 1);
  };
  const randomFlags = () => FLAGS.filter(() => rng.chance(0.3));

  // Each planner applies its op to the model, pushes the state, and returns what to run.
  const planAppend = (): Planned | undefined => {
    const names = boxNames();
    if (names.length === 0) return undefined;
    const name = rng.pick(names);
    const count = rng.chance(0.3) ? 2 + rng.int(3) : 1;
    const items = Array.from({ length: count }, () => ({ bytes: nextBody(), flags: randomFlags(), date: DATE_BASE + 1000 * dateCounter++ }));
    const expected = model.append(name, items);
    states.push(model.dump());
    if (count === 1) {
      return {
        label: `append ${name}`,
        run: (s) => s.append(name, items[0].bytes, { flags: items[0].flags, internalDate: items[0].date }),
        check: (r) => expect((r as { uid: number }).uid, `append ${name}`).toBe(expected[0]),
      };
    }
    return {
      label: `appendBatch ${name} x${count}`,
      run: (s) => s.appendBatch(name, items.map((it) => ({ bytes: it.bytes, flags: it.flags, internalDate: it.date }))),
      check: (r) => expect((r as { uid: number }[]).map((x) => x.uid), `appendBatch ${name}`).toEqual(expected),
    };
  };
  const planFlags = (): Planned | undefined => {
    const names = boxNames().filter((n) => model.box(n).messages.size > 0);
    if (names.length === 0) return undefined;
    const name = rng.pick(names);
    const uids = someUids(name);
    const change = rng.chance(0.2) ? { replace: randomFlags() } : { add: randomFlags(), remove: randomFlags() };
    const updated = model.setFlags(name, uids, change);
    states.push(model.dump());
    return {
      label: `flags ${name} ${uids.join(',')}`,
      run: (s) => s.setFlags(name, uids, change),
      check: (r) => expect((r as { updated: number[] }).updated, `flags ${name}`).toEqual(updated),
    };
  };
  const planExpunge = (): Planned | undefined => {
    const names = boxNames().filter((n) => model.box(n).messages.size > 0);
    if (names.length === 0) return undefined;
    const name = rng.pick(names);
    const uids = someUids(name);
    const expunged = model.expunge(name, uids);
    states.push(model.dump());
    return {
      label: `expunge ${name} ${uids.join(',')}`,
      run: (s) => s.expunge(name, uids),
      check: (r) => expect((r as { expunged: number[] }).expunged, `expunge ${name}`).toEqual(expunged),
    };
  };
  const planTransfer = (move: boolean): Planned | undefined => {
    const names = boxNames();
    const sources = names.filter((n) => model.box(n).messages.size > 0);
    if (sources.length === 0 || names.length < 2) return undefined;
    const from = rng.pick(sources);
    const to = rng.pick(names.filter((n) => n !== from));
    const uids = someUids(from);
    const mapping = model.transfer(from, uids, to, move);
    states.push(model.dump());
    return {
      label: `${move ? 'move' : 'copy'} ${from} -> ${to}`,
      run: (s) => (move ? s.move(from, uids, to) : s.copy(from, uids, to)),
      check: (r) => expect((r as { mapping: [number, number][] }).mapping, `${move ? 'move' : 'copy'} ${from}`).toEqual(mapping),
    };
  };
  const planAcl = (): Planned | undefined => {
    const names = boxNames();
    if (names.length === 0) return undefined;
    const name = rng.pick(names);
    const who = rng.pick(USERS);
    const rights = rng.pick(RIGHTS);
    model.setAcl(name, who, rights);
    states.push(model.dump());
    return { label: `acl ${name} ${who}=${rights}`, run: (s) => s.setAcl(name, who, rights) };
  };

  /**
   * A snapshot beside the live store, then retirement of the journal below the older kept snapshot
   * (from the second on: a lone snapshot retires nothing): no model change, so no op; its crash
   * points fall between ops.
   */
  const storeSnapshot = async () => {
    await store.snapshot();
    // with inline bodies, the retirement first moves them into packs: records the model did not
    // predict, invisible but for the seqs they take (as a compaction's below)
    model.seq = store.maintenance().journal.lastSeq;
    snapshotsTaken++;
  };

  for (let step = 0; step < options.steps; step++) {
    const roll = rng.next();
    // every seed's run snapshots twice at least, so that retirement is among its crash points
    // (FAULTFS_SEED's long form draws seeds whose rolls never asked for one)
    if (options.steps - step <= 2 - snapshotsTaken) {
      await storeSnapshot();
      continue;
    }
    const names = boxNames();
    if (names.length < 3 || roll < 0.06) {
      const name = NAMES.find((n) => !model.boxes.has(n));
      if (name) {
        const owner = rng.chance(0.6) ? rng.pick(['alice', 'bob']) : undefined;
        await sequential(`create ${name}`, (s) => s.createMailbox(name, owner ? { owner } : {}), (r) => {
          const result = r as { id: string; uidValidity: number; created: Date };
          model.create(name, result, owner);
        });
        continue;
      }
    }
    if (roll < 0.3) {
      // concurrent: 2..6 operations in one group commit
      const planned: Planned[] = [];
      const n = 2 + rng.int(5);
      for (let i = 0; i < n; i++) {
        const kind = rng.next();
        const p = kind < 0.55 ? planAppend() : kind < 0.7 ? planFlags() : kind < 0.8 ? planExpunge() : kind < 0.9 ? planTransfer(rng.chance(0.5)) : planAcl();
        if (p) planned.push(p);
      }
      if (planned.length > 0) await concurrent(planned);
    } else if (roll < 0.82) {
      const kind = rng.next();
      const p = kind < 0.45 ? planAppend() : kind < 0.6 ? planFlags() : kind < 0.72 ? planExpunge() : kind < 0.88 ? planTransfer(rng.chance(0.5)) : planAcl();
      if (p) await concurrent([p]);
    } else if (roll < 0.88) {
      const from = rng.pick(names);
      let to = rng.chance(0.5) ? `Renamed${renameCounter++}` : `Archive/old${renameCounter++}`;
      if (to.startsWith(`${from}/`)) to = `Renamed${renameCounter++}`; // Archive into its own child is INVALID
      model.rename(from, to);
      states.push(model.dump());
      ops.push({ label: `rename ${from} -> ${to}`, submittedAt: ffs.logLength, ackedAt: -1 });
      await store.renameMailbox(from, to);
      ops[ops.length - 1].ackedAt = ffs.logLength;
      await verify(`rename ${from}`);
    } else if (roll < 0.92 && names.length > 3) {
      const name = rng.pick(names);
      model.delete(name);
      states.push(model.dump());
      ops.push({ label: `delete ${name}`, submittedAt: ffs.logLength, ackedAt: -1 });
      await store.deleteMailbox(name);
      ops[ops.length - 1].ackedAt = ffs.logLength;
      await verify(`delete ${name}`);
    } else if (roll >= 0.92 && roll <= 0.95) {
      await storeSnapshot();
    } else if (roll > 0.95) {
      // a quiescent point: close, copy index/ for the 'older' crash states, reopen
      await store.close();
      await snapshot();
      store = await Store.open(dir, { fs: ffs, ...storeOptions });
    } else if (options.compact) {
      // a compaction (the rolls that did nothing before, so the rest of the workload is unchanged):
      // invisible to the model but for the journal seqs its records take
      states.push(model.dump());
      ops.push({ label: 'compact', submittedAt: ffs.logLength, ackedAt: -1 });
      await store.compact();
      ops[ops.length - 1].ackedAt = ffs.logLength;
      model.seq = store.maintenance().journal.lastSeq;
      await verify('compact');
    }
  }
  await store.close();
  expect(states.length).toBe(ops.length + 1);
  return { states, ops, snapshots, logLength: ffs.logLength, storeOptions, indexSnapshots: snapshotsTaken };
}

/** The model states a store recovered from a crash after log entry `afterOp` may show. */
export function allowedStates(run: WorkloadRun, afterOp: number): { lo: number; hi: number } {
  let lo = 0, hi = 0;
  run.ops.forEach((op, i) => {
    if (op.ackedAt >= 0 && op.ackedAt <= afterOp) lo = Math.max(lo, i + 1);
    if (op.submittedAt < afterOp) hi = Math.max(hi, i + 1);
  });
  return { lo, hi: Math.max(lo, hi) };
}
