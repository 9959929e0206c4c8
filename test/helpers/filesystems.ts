// One test body, both file systems (after abstract-level's shared suite): the node file system and
// FaultFS passing every call through with no faults. A suite written as
//   describeEachFs('store core', ({ Store }) => { ... Store.open(dir, { create: true }) ... });
// opens its stores through the `Store` it is handed, which fills in `fs` (an `fs` a test passes
// itself, e.g. a FaultFS with faults, wins). LevelDB's index/ never goes through a FileSystem: it is
// on the real disk in both runs.
import { afterAll, describe, expect } from 'vitest';
import type { FileSystem } from '../../src/fs/filesystem.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { Store as RealStore, type StoreOptions } from '../../src/store/store.js';
import { FaultFileSystem } from '../sim/faultfs.js';

export type FsName = 'node' | 'faultfs';
export const FILE_SYSTEMS: readonly FsName[] = ['node', 'faultfs'];

export interface OnFs {
  name: FsName;
  fs: FileSystem;
  /** Store.open with this run's file system. */
  Store: { open(root: string, options?: StoreOptions): Promise<RealStore> };
}

/** `defaults`: options every open of the suite starts from (e.g. helpers/packed.ts PACKED). */
export function onFs(name: FsName, defaults: StoreOptions = {}): OnFs {
  const fs = name === 'node' ? nodeFileSystem : new FaultFileSystem();
  return { name, fs, Store: { open: (root, options = {}) => RealStore.open(root, { fs, ...defaults, ...options }) } };
}

/**
 * `describe` once per file system, titled "TITLE [node]" and "TITLE [faultfs]". On FaultFS it also
 * checks, after the suite, that the stores really wrote and synced through it.
 */
export function describeEachFs(title: string, body: (on: OnFs) => void, defaults: StoreOptions = {}): void {
  describe.each(FILE_SYSTEMS)(`${title} [%s]`, (name) => {
    const on = onFs(name, defaults);
    if (on.fs instanceof FaultFileSystem) {
      const fault = on.fs;
      afterAll(() => {
        const counts = fault.counters();
        expect(counts.writes, `${title}: nothing was written through FaultFS`).toBeGreaterThan(0);
        expect(counts.sync, `${title}: nothing was synced through FaultFS`).toBeGreaterThan(0);
      });
    }
    body(on);
  });
}
