// Proves the FaultFS crash model and fault injection before any store test trusts them: if these
// pass, "the store survived every crash state" means the states were the ones POSIX allows.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FaultFileSystem, readTree, type CrashMode, type MaterializeOptions } from './faultfs.js';
import { fromSystemError } from '../../src/errors.js';

const SEED = 0x5eed;

let work: string;
let base: string;
let crashCounter = 0;

beforeEach(async () => {
  work = await fsp.mkdtemp(join(tmpdir(), 'faultfs-test-'));
  base = join(work, 'store');
  await fsp.mkdir(base);
});

afterEach(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

const at = (rel: string): string => join(base, rel);

async function crash(ffs: FaultFileSystem, afterOp: number, seed: number, mode: CrashMode, options: MaterializeOptions = {}) {
  const dir = join(work, `crash-${crashCounter++}`);
  const report = await ffs.materializeCrash(dir, afterOp, seed, { mode, ...options });
  return { dir, report, tree: await readTree(dir) };
}

async function createFile(ffs: FaultFileSystem, rel: string, data: Buffer | string, sync = false): Promise<void> {
  const handle = await ffs.open(at(rel), 'createNew');
  await handle.write(Buffer.from(data), 0);
  if (sync) await handle.sync();
  await handle.close();
}

function text(tree: Map<string, Buffer | 'dir'>, rel: string): string | undefined {
  const entry = tree.get(rel);
  return entry === undefined || entry === 'dir' ? entry : entry.toString();
}

async function recorder(seed = SEED): Promise<FaultFileSystem> {
  const ffs = new FaultFileSystem({ seed });
  await ffs.startRecording(base);
  return ffs;
}

/** A sequential workload using every mutating op; returns the live tree after each log entry. */
async function workload(ffs: FaultFileSystem): Promise<Map<string, Buffer | 'dir'>[]> {
  const states = [await readTree(base)];
  const step = async (run: () => Promise<unknown>): Promise<void> => {
    await run();
    expect(ffs.logLength, 'one log entry per mutating call').toBe(states.length);
    states.push(await readTree(base));
  };
  const handle = { current: undefined as Awaited<ReturnType<FaultFileSystem['open']>> | undefined };
  const h = () => handle.current!;
  await step(() => ffs.mkdir(at('tmp')));
  await step(() => ffs.mkdir(at('journal')));
  await step(async () => (handle.current = await ffs.open(at('tmp/seg'), 'createNew')));
  await step(() => h().write(Buffer.alloc(700, 'a'), 0));
  await step(() => h().write(Buffer.alloc(1300, 'b'), 700));
  await step(() => h().sync());
  await step(() => ffs.rename(at('tmp/seg'), at('journal/000001')));
  await step(() => h().write(Buffer.alloc(600, 'c'), 2000));
  await step(() => ffs.syncDir(at('journal')));
  await step(() => h().truncate(2300));
  await step(() => h().write(Buffer.from('tail'), 2300));
  await h().close();
  await step(async () => (handle.current = await ffs.open(at('journal/000002'), 'createNew')));
  await step(() => h().write(Buffer.from('second'), 0));
  await h().close();
  await step(() => ffs.syncDir(at('journal')));
  await step(() => ffs.syncDir(base));
  await step(() => ffs.unlink(at('journal/000002')));
  await step(() => ffs.rmdir(at('tmp')));
  return states;
}

describe('crash model: data', () => {
  it('loses an un-synced write in all-lost and keeps it in all-kept', async () => {
    await fsp.writeFile(at('a'), 'old');
    const ffs = await recorder();
    const handle = await ffs.open(at('a'), 'readWrite');
    await handle.write(Buffer.from('new!'), 3);
    await handle.close();
    expect(text((await crash(ffs, 1, SEED, 'all-lost')).tree, 'a')).toBe('old');
    expect(text((await crash(ffs, 1, SEED, 'all-kept')).tree, 'a')).toBe('oldnew!');
    expect(text((await crash(ffs, 0, SEED, 'all-kept')).tree, 'a'), 'afterOp=0 is the initial state').toBe('old');
  });

  it('keeps a write once the file is synced, and only what was written before the sync started', async () => {
    await fsp.writeFile(at('a'), '');
    const ffs = await recorder();
    const handle = await ffs.open(at('a'), 'readWrite');
    await handle.write(Buffer.from('one'), 0);
    await handle.sync();
    await handle.write(Buffer.from('two'), 3);
    await handle.close();
    expect(text((await crash(ffs, 3, SEED, 'all-lost')).tree, 'a')).toBe('one');
  });

  it('does not count a write issued while a sync was running as covered by it', async () => {
    await fsp.writeFile(at('f'), '');
    const ffs = await recorder();
    const handle = await ffs.open(at('f'), 'readWrite');
    await handle.write(Buffer.from('a'), 0);
    await Promise.all([handle.sync(), handle.write(Buffer.from('b'), 1)]);
    await handle.close();
    expect(text((await crash(ffs, ffs.logLength, SEED, 'all-lost')).tree, 'f')).toBe('a');
  });

  it('produces torn, zero-filled, lost and kept outcomes across seeds, tearing at sector boundaries', async () => {
    await fsp.writeFile(at('f'), Buffer.alloc(1000, 'A'));
    const ffs = await recorder();
    const handle = await ffs.open(at('f'), 'readWrite');
    await handle.write(Buffer.alloc(8192, 'B'), 1000);
    await handle.close();
    const seen = new Map<string, number>();
    for (let seed = 1; seed <= 200; seed += 1) {
      const { tree, report } = await crash(ffs, 1, seed, 'random');
      const bytes = tree.get('f') as Buffer;
      const why = `seed=${seed} ${report.reproduce} ${report.decisions.join('; ')}`;
      expect(bytes.subarray(0, 1000).equals(Buffer.alloc(1000, 'A')), why).toBe(true);
      const tail = bytes.subarray(1000);
      const written = tail.indexOf(0) < 0 ? tail.length : tail.indexOf(0);
      const outcome =
        bytes.length === 1000 ? 'lost' :
        written === 8192 ? 'kept' :
        written === 0 ? 'zeroed' : 'torn';
      if (outcome === 'torn') {
        expect((1000 + written) % 512, `torn at a sector boundary: ${why}`).toBe(0);
        expect(tail.subarray(0, written).every((b) => b === 0x42), why).toBe(true);
        expect(tail.subarray(written).every((b) => b === 0), why).toBe(true);
      }
      expect(report.counts[outcome], `report agrees with the bytes: ${why}`).toBe(1);
      seen.set(outcome, (seen.get(outcome) ?? 0) + 1);
    }
    expect([...seen.keys()].sort(), JSON.stringify([...seen])).toEqual(['kept', 'lost', 'torn', 'zeroed']);
  });

  it('lets un-synced writes to different files survive independently', async () => {
    await fsp.writeFile(at('x'), '');
    await fsp.writeFile(at('y'), '');
    const ffs = await recorder();
    for (const name of ['x', 'y']) {
      const handle = await ffs.open(at(name), 'readWrite');
      await handle.write(Buffer.from(name), 0);
      await handle.close();
    }
    const combinations = new Set<string>();
    for (let seed = 1; seed <= 100; seed += 1) {
      const { tree } = await crash(ffs, 2, seed, 'random');
      combinations.add(`${text(tree, 'x') === 'x'}/${text(tree, 'y') === 'y'}`);
    }
    expect([...combinations].sort()).toEqual(['false/false', 'false/true', 'true/false', 'true/true']);
  });

  it('keeps an un-synced truncate only in all-kept, and always once synced', async () => {
    await fsp.writeFile(at('t'), '0123456789');
    const ffs = await recorder();
    const handle = await ffs.open(at('t'), 'readWrite');
    await handle.truncate(4);
    expect(text((await crash(ffs, 1, SEED, 'all-lost')).tree, 't')).toBe('0123456789');
    expect(text((await crash(ffs, 1, SEED, 'all-kept')).tree, 't')).toBe('0123');
    await handle.sync();
    await handle.close();
    expect(text((await crash(ffs, 2, SEED, 'all-lost')).tree, 't')).toBe('0123');
  });
});

describe('crash model: names', () => {
  it('can lose a fsynced new file whose directory was not synced', async () => {
    await fsp.mkdir(at('packs'));
    const ffs = await recorder();
    await createFile(ffs, 'packs/p1', 'blob', true); // create #1, write #2, sync #3
    expect((await crash(ffs, 3, SEED, 'all-lost')).tree.has('packs/p1')).toBe(false);
    expect((await crash(ffs, 3, SEED, 'all-lost')).tree.get('packs')).toBe('dir');
    const outcomes = new Set<boolean>();
    for (let seed = 1; seed <= 40; seed += 1) outcomes.add((await crash(ffs, 3, seed, 'random')).tree.has('packs/p1'));
    expect(outcomes, 'random crashes both keep and lose it').toEqual(new Set([true, false]));
    await ffs.syncDir(at('packs'));
    expect(text((await crash(ffs, 4, SEED, 'all-lost')).tree, 'packs/p1')).toBe('blob');
  });

  it('comes back empty when the name is durable but the data was never synced', async () => {
    const ffs = await recorder();
    await createFile(ffs, 'new', 'data');
    await ffs.syncDir(base);
    expect(text((await crash(ffs, 3, SEED, 'all-lost')).tree, 'new')).toBe('');
  });

  it('loses a rename without syncDir and keeps it with syncDir, moving the data with the inode', async () => {
    await fsp.mkdir(at('tmp'));
    await fsp.mkdir(at('packs'));
    const ffs = await recorder();
    const handle = await ffs.open(at('tmp/x'), 'createNew'); // #1
    await handle.write(Buffer.from('head'), 0); // #2
    await handle.sync(); // #3
    await ffs.syncDir(at('tmp')); // #4
    await ffs.rename(at('tmp/x'), at('packs/x')); // #5
    const lost = await crash(ffs, 5, SEED, 'all-lost');
    expect([text(lost.tree, 'tmp/x'), lost.tree.has('packs/x')]).toEqual(['head', false]);
    const kept = await crash(ffs, 5, SEED, 'all-kept');
    expect([kept.tree.has('tmp/x'), text(kept.tree, 'packs/x')]).toEqual([false, 'head']);
    await ffs.syncDir(at('packs')); // #6
    await handle.write(Buffer.from('+tail'), 4); // #7: through the fd opened under the old name
    await handle.sync(); // #8
    await handle.close();
    const durable = await crash(ffs, 8, SEED, 'all-lost');
    expect([durable.tree.has('tmp/x'), text(durable.tree, 'packs/x')]).toEqual([false, 'head+tail']);
  });

  it('brings back an unlinked file until its directory is synced', async () => {
    await fsp.writeFile(at('old'), 'still here');
    const ffs = await recorder();
    await ffs.unlink(at('old'));
    expect(text((await crash(ffs, 1, SEED, 'all-lost')).tree, 'old')).toBe('still here');
    expect((await crash(ffs, 1, SEED, 'all-kept')).tree.has('old')).toBe(false);
    await ffs.syncDir(base);
    expect((await crash(ffs, 2, SEED, 'all-lost')).tree.has('old')).toBe(false);
  });

  it("keeps a directory's un-synced changes only as a prefix of their order", async () => {
    const ffs = await recorder();
    for (const name of ['a', 'b', 'c']) await (await ffs.open(at(name), 'createNew')).close();
    const seen = new Set<string>();
    for (let seed = 1; seed <= 60; seed += 1) {
      const { tree, report } = await crash(ffs, 3, seed, 'random');
      const names = [...tree.keys()].join('');
      expect(['', 'a', 'ab', 'abc'], report.reproduce).toContain(names);
      seen.add(names);
    }
    expect(seen.size).toBe(4);
  });

  it('loses everything under a new directory whose parent was not synced', async () => {
    const ffs = await recorder();
    await ffs.mkdir(at('packs')); // #1
    await createFile(ffs, 'packs/p', 'blob', true); // #2..#4
    await ffs.syncDir(at('packs')); // #5
    expect((await crash(ffs, 5, SEED, 'all-lost')).tree.size).toBe(0);
    await ffs.syncDir(base); // #6
    expect(text((await crash(ffs, 6, SEED, 'all-lost')).tree, 'packs/p')).toBe('blob');
  });

  it('reproduces the live directory at every op in all-kept (the SIGKILL case)', async () => {
    const ffs = await recorder();
    const states = await workload(ffs);
    for (let afterOp = 0; afterOp < states.length; afterOp += 1) {
      const { tree } = await crash(ffs, afterOp, SEED, 'all-kept');
      expect(tree, `afterOp=${afterOp} seed=${SEED} mode=all-kept`).toEqual(states[afterOp]);
    }
  });

  it('keeps exactly the durable state in all-lost after the workload', async () => {
    const ffs = await recorder();
    const states = await workload(ffs);
    const { tree } = await crash(ffs, states.length - 1, SEED, 'all-lost');
    // tmp (mkdir #1) and journal (#2) became durable with syncDir(base) #15; journal/000001's rename
    // with syncDir(journal) #9, 000002's create with #14; 000001's data up to the sync #6 (2000
    // bytes). The truncate, the later writes, the unlink of 000002 and the rmdir of tmp were never synced.
    expect([...tree.keys()].sort()).toEqual(['journal', 'journal/000001', 'journal/000002', 'tmp']);
    expect((tree.get('journal/000001') as Buffer).toString()).toBe('a'.repeat(700) + 'b'.repeat(1300));
    expect(text(tree, 'journal/000002'), 'name durable, data never synced').toBe('');
  });

  it('gives the same crash state for the same seed, and different ones across seeds', async () => {
    const ffs = await recorder();
    const states = await workload(ffs);
    const last = states.length - 1;
    for (let afterOp = 0; afterOp <= last; afterOp += 1) {
      const seed = 1000 + afterOp;
      const first = await crash(ffs, afterOp, seed, 'random');
      const second = await crash(ffs, afterOp, seed, 'random');
      expect(second.tree, first.report.reproduce).toEqual(first.tree);
      expect(second.report.decisions).toEqual(first.report.decisions);
    }
    const distinct = new Set<string>();
    for (let seed = 1; seed <= 30; seed += 1) {
      const { tree } = await crash(ffs, last, seed, 'random');
      distinct.add(JSON.stringify([...tree].map(([k, v]) => [k, v === 'dir' ? v : v.toString('hex')])));
    }
    expect(distinct.size).toBeGreaterThan(3);
  });
});

describe('excluded paths (the LevelDB index)', () => {
  it('copies the current index, omits it, or puts back an older copy', async () => {
    await fsp.mkdir(at('index'));
    await fsp.writeFile(at('index/CURRENT'), 'v1');
    await fsp.writeFile(at('STORE'), 'identity');
    const ffs = new FaultFileSystem({ seed: SEED });
    await ffs.startRecording(base, { exclude: ['index'] });
    const older = join(work, 'older');
    await ffs.snapshotExcluded(older);
    await fsp.writeFile(at('index/CURRENT'), 'v2'); // as LevelDB would, behind the FaultFS's back
    const handle = await ffs.open(at('index/LOG'), 'createNew');
    await handle.write(Buffer.from('log'), 0);
    await handle.close();
    expect(ffs.logLength, 'excluded paths are not recorded').toBe(0);
    const current = await crash(ffs, 0, SEED, 'all-lost', { indexMode: 'current' });
    expect([text(current.tree, 'index/CURRENT'), text(current.tree, 'STORE')]).toEqual(['v2', 'identity']);
    const missing = await crash(ffs, 0, SEED, 'all-lost', { indexMode: 'missing' });
    expect([missing.tree.has('index'), text(missing.tree, 'STORE')]).toEqual([false, 'identity']);
    const old = await crash(ffs, 0, SEED, 'all-lost', { indexMode: 'older', indexSource: older });
    expect([text(old.tree, 'index/CURRENT'), old.tree.has('index/LOG')]).toEqual(['v1', false]);
  });

  it('refuses to model a file that appeared behind its back', async () => {
    const ffs = await recorder();
    await fsp.writeFile(at('sneaky'), 'x');
    await expect(ffs.open(at('sneaky'), 'readWrite')).rejects.toThrow(/neither there at startRecording/);
    await expect(ffs.open(at('sneaky'), 'createOrOpen')).rejects.toThrow(/neither there at startRecording/);
  });
});

describe('crash states', () => {
  it('covers every crash point in every mode, deterministically', async () => {
    const ffs = await recorder();
    const states = await workload(ffs);
    const specs = ffs.crashStates();
    expect(specs.length).toBe(states.length * 3);
    for (const mode of ['all-lost', 'random', 'all-kept'] as const) {
      expect(specs.filter((s) => s.mode === mode).map((s) => s.afterOp)).toEqual([...states.keys()]);
    }
    expect(ffs.crashStates({ count: 5, seed: 7 })).toEqual(ffs.crashStates({ count: 5, seed: 7 }));
    expect(ffs.crashStates({ count: 5, seed: 7 })).not.toEqual(ffs.crashStates({ count: 5, seed: 8 }));
  });

  it('names the state, its seed and where it was kept when a check fails', async () => {
    const ffs = await recorder();
    await workload(ffs);
    let checked = 0;
    const failure = ffs.forEachCrash(async (dir, report) => {
      checked += 1;
      if (report.mode === 'random' && report.afterOp === 3) throw new Error('invariant broken');
    }, { tmpRoot: work });
    await expect(failure).rejects.toThrow(/crash state afterOp=3 seed=\d+ mode=random .*invariant broken; state kept in /);
    expect(checked).toBeGreaterThan(3);
  });
});

describe('fault injection', () => {
  it('throws ENOSPC like node at op N and leaves the file as it was', async () => {
    const ffs = await recorder();
    const handle = await ffs.open(at('f'), 'createNew'); // seq 1
    ffs.injectAt(ffs.nextSeq + 1, 'ENOSPC');
    await handle.write(Buffer.from('good'), 0); // seq 2
    const error = await handle.write(Buffer.from('lost'), 4).catch((e: unknown) => e); // seq 3
    expect(error).toMatchObject({ code: 'ENOSPC', errno: -28, syscall: 'write', path: at('f') });
    expect((error as Error).message).toBe('ENOSPC: no space left on device, write');
    expect(await fsp.readFile(at('f'), 'utf8')).toBe('good');
    await handle.write(Buffer.from('more'), 4); // one-shot: the next call succeeds
    await handle.close();
    expect(ffs.firedFaults()).toEqual([{ seq: 3, kind: 'write', path: at('f'), code: 'ENOSPC' }]);
    expect(ffs.ops().map((op) => op.kind)).toEqual(['create', 'write', 'write']);
  });

  it('fails a create with the path in the message and creates nothing', async () => {
    const ffs = await recorder();
    ffs.injectAt((op) => op.kind === 'create', 'EIO');
    const error = await ffs.open(at('g'), 'createNew').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'EIO', errno: -5, syscall: 'open', message: `EIO: i/o error, open '${at('g')}'` });
    expect(await fsp.readdir(base)).toEqual([]);
    expect(ffs.logLength).toBe(0);
  });

  it('leaves the prefix of a short write on disk and in the model, then throws ENOSPC', async () => {
    const ffs = await recorder();
    const handle = await ffs.open(at('f'), 'createNew');
    ffs.injectAt((op) => op.kind === 'write', { kind: 'shortWrite', bytes: 100 });
    const data = Buffer.alloc(1000, 'z');
    await expect(handle.write(data, 0)).rejects.toMatchObject({ code: 'ENOSPC', syscall: 'write' });
    expect((await fsp.readFile(at('f'))).equals(data.subarray(0, 100))).toBe(true);
    expect(text((await crash(ffs, ffs.logLength, SEED, 'all-kept')).tree, 'f')).toBe('z'.repeat(100));
    ffs.injectAt((op) => op.kind === 'write', 'shortWrite'); // a seeded length below the full size
    await expect(handle.write(data, 100)).rejects.toMatchObject({ code: 'ENOSPC' });
    const size = (await fsp.stat(at('f'))).size;
    expect(size, `seed ${ffs.seed}`).toBeGreaterThanOrEqual(100);
    expect(size, `seed ${ffs.seed}`).toBeLessThan(1100);
    await handle.close();
  });

  it('fails every matching op under failAll until clear', async () => {
    await fsp.writeFile(at('open'), '');
    const ffs = await recorder();
    const handle = await ffs.open(at('open'), 'readWrite');
    ffs.failAll('ENOSPC');
    await expect(ffs.open(at('a'), 'createNew')).rejects.toMatchObject({ code: 'ENOSPC', syscall: 'open' });
    await expect(handle.write(Buffer.from('x'), 0)).rejects.toMatchObject({ code: 'ENOSPC' });
    await expect(ffs.mkdir(at('d'))).rejects.toMatchObject({ code: 'ENOSPC', syscall: 'mkdir' });
    await handle.truncate(0); // freeing space still works on a full disk
    ffs.clear();
    await createFile(ffs, 'a', 'fine');
    await handle.write(Buffer.from('x'), 0);
    await handle.close();
    expect(await fsp.readFile(at('a'), 'utf8')).toBe('fine');
  });

  it('models a directory that lost its write bit with EACCES on a path prefix', async () => {
    await fsp.mkdir(at('packs'));
    await fsp.mkdir(at('tmp'));
    await fsp.writeFile(at('packs/old'), '');
    const ffs = await recorder();
    const open = await ffs.open(at('packs/old'), 'readWrite');
    await createFile(ffs, 'tmp/y', 'y');
    ffs.failAll('EACCES', { pathPrefix: 'packs/' });
    await expect(ffs.open(at('packs/new'), 'createNew')).rejects.toMatchObject({ code: 'EACCES', errno: -13 });
    await expect(ffs.rename(at('tmp/y'), at('packs/y'))).rejects.toMatchObject({
      code: 'EACCES', syscall: 'rename', message: `EACCES: permission denied, rename '${at('tmp/y')}' -> '${at('packs/y')}'`,
    });
    await expect(ffs.open(at('packs/old'), 'readWrite')).rejects.toMatchObject({ code: 'EACCES' });
    await open.write(Buffer.from('an fd opened before keeps writing'), 0);
    await createFile(ffs, 'tmp/z', 'elsewhere is fine');
    ffs.clear();
    await ffs.rename(at('tmp/y'), at('packs/y'));
    await open.close();
  });

  it('fails syncs with EROFS and reads with EIO', async () => {
    await fsp.writeFile(at('f'), 'data');
    const ffs = await recorder();
    const handle = await ffs.open(at('f'), 'readWrite');
    ffs.failAll('EROFS');
    await expect(handle.sync()).rejects.toMatchObject({ code: 'EROFS', errno: -30, syscall: 'fdatasync' });
    await expect(ffs.syncDir(base)).rejects.toMatchObject({ code: 'EROFS', syscall: 'fsync' });
    ffs.clear();
    ffs.failAll('EIO', { ops: ['read'], pathPrefix: 'f' });
    await expect(ffs.readFile(at('f'))).rejects.toMatchObject({ code: 'EIO', syscall: 'read' });
    await expect(handle.read(Buffer.alloc(4), 0, 4, 0)).rejects.toMatchObject({ code: 'EIO' });
    ffs.clear();
    expect((await ffs.readFile(at('f'))).toString()).toBe('data');
    await handle.close();
  });

  it('fails writevDurable\'s flush inside the real one (node-fs, in the calling thread), after its real write', async () => {
    await fsp.writeFile(at('f'), '');
    const ffs = await recorder();
    const handle = await ffs.open(at('f'), 'readWrite');
    await handle.writevDurable([Buffer.from('one'), Buffer.from('!')], 0); // write seq 1, sync seq 2
    ffs.injectAt((op) => op.kind === 'sync', 'EIO');
    const error = await handle.writevDurable([Buffer.from('two')], 4).catch((e: unknown) => e); // write seq 3, sync seq 4 fails
    expect(error).toMatchObject({ code: 'EIO', syscall: 'fdatasync', path: at('f') });
    expect((error as Error).stack).toMatch(/NodeFileHandle\.writevDurable/); // raised where the kernel's fdatasync runs
    expect(ffs.firedFaults()).toEqual([{ seq: 4, kind: 'sync', path: at('f'), code: 'EIO' }]);
    expect(await fsp.readFile(at('f'), 'utf8')).toBe('one!two'); // the write reached the file
    expect(ffs.ops().map((op) => `${op.kind} ${op.seq}`)).toEqual(['write 1', 'sync 2', 'write 3']);
    await handle.close();
    expect(text((await crash(ffs, ffs.logLength, SEED, 'all-lost')).tree, 'f')).toBe('one!'); // only the synced write is durable
    expect(text((await crash(ffs, ffs.logLength, SEED, 'all-kept')).tree, 'f')).toBe('one!two');
  });

  it('fails writevDurable\'s write before anything is written, and over another inner file system makes two calls', async () => {
    await fsp.writeFile(at('f'), '');
    const ffs = await recorder();
    const handle = await ffs.open(at('f'), 'readWrite');
    ffs.injectAt((op) => op.kind === 'write', 'EIO');
    await expect(handle.writevDurable([Buffer.from('x')], 0)).rejects.toMatchObject({ code: 'EIO', syscall: 'write' });
    expect(await fsp.readFile(at('f'), 'utf8')).toBe('');
    expect(ffs.ops()).toEqual([]);
    await handle.close();
    const wrapped = new FaultFileSystem({ inner: new FaultFileSystem() });
    expect(wrapped.flushesReachable).toBe(false);
    const other = await wrapped.open(at('f'), 'readWrite');
    wrapped.injectAt((op) => op.kind === 'sync', 'EIO');
    await expect(other.writevDurable([Buffer.from('y')], 0)).rejects.toMatchObject({ code: 'EIO', syscall: 'fdatasync' });
    expect(wrapped.counters().writes).toBe(1);
    await other.close();
  });

  it('fails directory listings and stats, and a one-shot rule with `times` fires exactly that often', async () => {
    await fsp.writeFile(at('f'), 'data');
    const ffs = await recorder();
    ffs.injectAt((op) => op.kind === 'stat' && op.path === at('f'), 'EIO', { times: 2 });
    await expect(ffs.stat(at('f'))).rejects.toMatchObject({ code: 'EIO', syscall: 'stat', path: at('f') });
    await expect(ffs.statIfExists(at('f'))).rejects.toMatchObject({ code: 'EIO' });
    expect((await ffs.stat(at('f'))).size).toBe(4); // fired twice, then gone
    let listings = 0;
    ffs.injectAt((op) => op.kind === 'readdir' && ++listings === 2, 'EACCES'); // the predicate sees each call once
    expect(await ffs.readdir(base)).toEqual(['f']);
    await expect(ffs.readdir(base)).rejects.toMatchObject({ code: 'EACCES', syscall: 'scandir' });
    expect(await ffs.readdir(base)).toEqual(['f']);
    expect(listings).toBe(2);
    expect(ffs.firedFaults().map((f) => `${f.kind} ${f.code}`)).toEqual(['stat EIO', 'stat EIO', 'readdir EACCES']);
  });

  it('throws every errno the store maps to its own codes, shaped like node\'s', async () => {
    const ffs = await recorder();
    const expected = { ENOSPC: 'NO_SPACE', EDQUOT: 'NO_SPACE', EFBIG: 'NO_SPACE', EIO: 'IO', EACCES: 'ACCESS', EPERM: 'ACCESS', EROFS: 'ACCESS' } as const;
    for (const [errno, code] of Object.entries(expected) as [keyof typeof expected, string][]) {
      ffs.injectAt((op) => op.kind === 'create', errno);
      const error = await ffs.open(at(`f-${errno}`), 'createNew').catch((e: unknown) => e);
      expect(error).toMatchObject({ code: errno, syscall: 'open', path: at(`f-${errno}`) });
      expect((error as NodeJS.ErrnoException).errno).toBeLessThan(0);
      expect(fromSystemError(error, 'creating', at(`f-${errno}`)).code, errno).toBe(code);
    }
  });
});

describe('counters', () => {
  it('counts sync and syncDir calls in total and per path', async () => {
    await fsp.mkdir(at('journal'));
    const ffs = await recorder();
    const handle = await ffs.open(at('journal/seg'), 'createNew');
    for (let i = 0; i < 5; i += 1) {
      await handle.write(Buffer.from('r'), i);
      await handle.sync();
    }
    await handle.close();
    await ffs.syncDir(at('journal'));
    await ffs.syncDir(base);
    await ffs.syncDir(base);
    const counts = ffs.counters();
    expect([counts.sync, counts.syncDir, counts.writes, counts.creates]).toEqual([5, 3, 5, 1]);
    expect(counts.syncByPath.get('journal/seg')).toBe(5);
    expect([counts.syncDirByPath.get('journal'), counts.syncDirByPath.get('.')]).toEqual([1, 2]);
    ffs.resetCounters();
    expect(ffs.counters().sync).toBe(0);
  });
});

describe('media damage', () => {
  const pattern = Buffer.from(Array.from({ length: 8192 }, (_, i) => ((i * 7) % 251) + 1));

  it.each(['zeros', 'garbage', 'bitflip'] as const)('%s changes exactly the given range', async (kind) => {
    await fsp.writeFile(at('f'), pattern);
    const ffs = await recorder();
    await ffs.damage(at('f'), { kind, offset: 1000, length: 300 });
    const after = await fsp.readFile(at('f'));
    expect(after.length).toBe(pattern.length);
    expect(after.subarray(0, 1000).equals(pattern.subarray(0, 1000))).toBe(true);
    expect(after.subarray(1300).equals(pattern.subarray(1300))).toBe(true);
    for (let i = 1000; i < 1300; i += 1) expect(after[i], `byte ${i}, seed ${ffs.seed}`).not.toBe(pattern[i]);
    if (kind === 'zeros') expect(after.subarray(1000, 1300).every((b) => b === 0)).toBe(true);
    if (kind === 'bitflip') {
      for (let i = 1000; i < 1300; i += 1) expect(popcount((after[i] as number) ^ (pattern[i] as number))).toBe(1);
    }
    const { tree } = await crash(ffs, ffs.logLength, SEED, 'all-lost');
    expect((tree.get('f') as Buffer).equals(after), 'damage is durable in crash states').toBe(true);
  });

  it('damages a seeded random range, the same for the same seed', async () => {
    await fsp.writeFile(at('a'), pattern);
    await fsp.writeFile(at('b'), pattern);
    const ffs = await recorder();
    for (let seed = 1; seed <= 20; seed += 1) {
      const spec = await ffs.randomDamage(at('a'), seed);
      expect(await ffs.randomDamage(at('b'), seed)).toEqual(spec);
      expect(spec.offset + spec.length, `seed ${seed}`).toBeLessThanOrEqual(pattern.length);
      expect((await fsp.readFile(at('a'))).equals(await fsp.readFile(at('b'))), `seed ${seed}`).toBe(true);
    }
    expect((await fsp.readFile(at('a'))).equals(pattern)).toBe(false);
  });

  it('refuses a range outside the file', async () => {
    await fsp.writeFile(at('f'), 'short');
    const ffs = await recorder();
    await expect(ffs.damage(at('f'), { kind: 'zeros', offset: 3, length: 10 })).rejects.toThrow(RangeError);
  });
});

function popcount(value: number): number {
  let count = 0;
  for (let v = value; v !== 0; v >>= 1) count += v & 1;
  return count;
}

describe("crash model: 'data-lost' (un-flushed writes lost, un-synced names kept)", () => {
  it('keeps each file exactly as its last completed sync left it, and keeps every un-synced name', async () => {
    await fsp.mkdir(at('tmp'));
    await fsp.mkdir(at('packs'));
    await fsp.writeFile(at('t'), '0123456789');
    const ffs = await recorder();
    const handle = await ffs.open(at('a'), 'createNew');
    await handle.write(Buffer.from('one'), 0);
    await handle.sync();
    await handle.write(Buffer.from('two'), 3); // never synced
    await handle.close();
    await createFile(ffs, 'packs/p1', 'blob'); // name and data never synced
    await createFile(ffs, 'tmp/x', 'synced', true);
    await ffs.rename(at('tmp/x'), at('packs/x')); // data synced, the rename not
    const t = await ffs.open(at('t'), 'readWrite');
    await t.truncate(4); // never synced
    await t.close();
    const lost = await crash(ffs, ffs.logLength, SEED, 'data-lost');
    expect(text(lost.tree, 'a')).toBe('one');
    expect(text(lost.tree, 'packs/p1'), 'the name survives, its data does not').toBe('');
    expect(text(lost.tree, 'packs/x')).toBe('synced');
    expect(lost.tree.has('tmp/x'), 'a rename is never both').toBe(false);
    expect(text(lost.tree, 't'), 'an un-synced truncate is lost').toBe('0123456789');
    const allLost = await crash(ffs, ffs.logLength, SEED, 'all-lost');
    expect(allLost.tree.has('a'), 'all-lost drops the un-synced name, data-lost keeps it').toBe(false);
    expect(allLost.tree.has('packs/p1')).toBe(false);
    expect(allLost.tree.has('tmp/x') || allLost.tree.has('packs/x'), 'nor its create or rename, whose directories were never synced').toBe(false);
  });
});
