// The object store's file and meta key names, apart from tier.ts: every open asks whether the store
// has an object store, and only a store that has one loads tier.ts and its S3 client (issue 16).

export const TIER_SETTINGS_FILE = 'OBJECT-STORE';
/** Meta key prefix of the packs in the bucket: tier/pack/NNNNNNNN -> TieredPack. */
export const TIER_META = 'tier/pack/';
/**
 * Meta key of the packs lost with the local disk (`mailstore rebuild-from-bucket`): number[]. The
 * index still refers into them (scrub reports those messages missing), so no new pack may take one
 * of their numbers: every open skips pack numbers past the highest.
 */
export const TIER_LOST = 'tier/lost-packs';
