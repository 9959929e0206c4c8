// The object store's file and meta key names, apart from tier.ts: every open asks whether the store
// has an object store, and only a store that has one loads tier.ts and its S3 client (issue 16).
import { MailstoreError } from '../errors.js';

export const TIER_SETTINGS_FILE = 'OBJECT-STORE';

/**
 * INVALID for a tier command on a store without an object store. It named `mailstore init
 * --object-store URL` as if that gave this store one: init refuses an existing store (EXISTS), and
 * a bucket is given only when a store is made (docs/OBJECT-STORAGE.md, "Not built yet").
 */
export function noObjectStore(root: string): Error {
  return new MailstoreError('INVALID', `the store at ${root} has no object store: a bucket is given only to a new store (mailstore init --object-store URL into an empty directory; docs/OBJECT-STORAGE.md), never to an existing one`);
}
/** Meta key prefix of the packs in the bucket: tier/pack/NNNNNNNN -> TieredPack. */
export const TIER_META = 'tier/pack/';
/**
 * Meta key of the packs lost with the local disk (`mailstore rebuild-from-bucket`): number[]. The
 * index still refers into them (scrub reports those messages missing), so no new pack may take one
 * of their numbers: every open skips pack numbers past the highest.
 */
export const TIER_LOST = 'tier/lost-packs';
