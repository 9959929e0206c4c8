// Store options for tests that damage the pack bytes of a message they deliver one at a time and
// expect that damage to be found. With inline bodies on (StoreOptions.inlineBodyBytesMax; on by
// default, limits.inlineBodyBytesDefault 32 KiB; docs/FORMAT.md "Inline bodies") such a message
// lives inside its journal record, not in a pack, so the damage would miss it: these tests pin
// inline bodies off and keep testing pack damage whatever the default is. Inline
// bodies have their own damage tests (inline-bodies.test.ts, record-at.test.ts, the crash explorer).
import { Store, type StoreOptions } from '../../src/store/store.js';

/** Every delivered body goes to a pack (the two-file commit). */
export const PACKED = { inlineBodyBytesMax: 0 } as const satisfies StoreOptions;

/** `options` with inline bodies off. */
export function packed<T extends StoreOptions>(options: T = {} as T): T & typeof PACKED {
  return { ...options, ...PACKED };
}

/**
 * `Store` whose every open pins inline bodies off: a test file about pack damage imports it as
 * `Store` (`import { PackedStore as Store } from '../helpers/packed.js'`), so every reopen in it
 * (each appends again) keeps bodies in packs.
 */
export const PackedStore = {
  open: (root: string, options: StoreOptions = {}): Promise<Store> => Store.open(root, packed(options)),
};
export type PackedStore = Store;
