// Which sealed packs move to the object store, and when (docs/OBJECT-STORAGE.md, "Policy"): a pure
// decision over the local packs, so the background mover, `tier flush` and the tests share it.
// Two rules, oldest pack first: a pack not written for `moveAfterMs` is cold and moves; while the
// local packs (the open one included) exceed the budget, the oldest sealed ones move until they fit.
// What stays is the newest mail: hot mail is read from the local disk.
import { MailstoreError } from '../errors.js';
import { limits } from '../limits.js';

/** The move policy a store keeps in its OBJECT-STORE settings (absent fields: the defaults). */
export interface TierPolicy {
  /** Local pack bytes kept at most, the open pack included; absent: tierLocalShareDefault of all pack bytes. */
  localBytesMax?: number;
  /** A sealed pack not written for this long moves even within the budget (default limits.tierMoveAfterMs). */
  moveAfterMs?: number;
}

export interface LocalPack {
  pack: number;
  bytes: number;
  /** Last write (the file's mtime): a sealed pack is not written again. */
  modifiedMs: number;
}

export interface MovePlanInput {
  /** Sealed local packs not yet in the bucket. */
  sealed: LocalPack[];
  /** Bytes of local packs that may not move now (the open pack). */
  pinnedBytes: number;
  /** Bytes already in the bucket. */
  remoteBytes: number;
  nowMs: number;
}

/** The budget in bytes under `policy` for a store holding `totalBytes` of packs. */
export function localBudgetBytes(policy: TierPolicy, totalBytes: number): number {
  return policy.localBytesMax ?? Math.floor(totalBytes * limits.tierLocalShareDefault);
}

/** The packs to move now, oldest first. */
export function planMoves(policy: TierPolicy, input: MovePlanInput): LocalPack[] {
  const sealed = [...input.sealed].sort((a, b) => a.pack - b.pack);
  let localBytes = input.pinnedBytes + sealed.reduce((sum, p) => sum + p.bytes, 0);
  const budget = localBudgetBytes(policy, localBytes + input.remoteBytes);
  const moveAfterMs = policy.moveAfterMs ?? limits.tierMoveAfterMs;
  const moving: LocalPack[] = [];
  for (const pack of sealed) {
    // written more than moveAfterMs ahead of now: the clock was ahead then (a VM's RTC, later put
    // right by NTP) and its age cannot be told; waiting for that date kept the pack local for as
    // long as the clock had been wrong, while newer packs moved. Cold, as compaction's grace does
    // with a release dated that far ahead (compact-plan.ts Grace)
    const cold = input.nowMs - pack.modifiedMs >= moveAfterMs || pack.modifiedMs - input.nowMs > moveAfterMs;
    if (!cold && localBytes <= budget) continue;
    moving.push(pack);
    localBytes -= pack.bytes;
  }
  return moving;
}

/** `500M`, `2G`, `1048576` (binary units) -> bytes. */
export function parseSize(text: string, option: string): number {
  const m = /^(\d+)([kmgt]?)i?b?$/i.exec(text.trim());
  if (!m) throw new MailstoreError('INVALID', `${option} takes a size like 500M or 2G, got ${JSON.stringify(text)}`);
  return Number(m[1]) * 1024 ** ' kmgt'.indexOf((m[2] || ' ').toLowerCase());
}

/** `30d`, `12h`, `90m`, `45s` -> milliseconds. */
export function parseDuration(text: string, option: string): number {
  const m = /^(\d+)([smhd])$/.exec(text.trim());
  if (!m) throw new MailstoreError('INVALID', `${option} takes a duration like 30d, 12h, 90m or 45s, got ${JSON.stringify(text)}`);
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

/** A policy from the settings file or the CLI, checked (INVALID names the field). */
export function checkPolicy(policy: TierPolicy): TierPolicy {
  for (const [name, value] of Object.entries(policy)) {
    if (!['localBytesMax', 'moveAfterMs'].includes(name)) throw new MailstoreError('INVALID', `unknown tier policy setting ${name}`);
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) throw new MailstoreError('INVALID', `tier policy ${name} must be a whole number >= 0, got ${value}`);
  }
  return policy;
}
