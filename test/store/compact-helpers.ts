// Shared by the compaction tests: a churned store (80 % of M expunged, one body alive in K), and
// the checks every compaction test makes afterwards.
import { expect } from 'vitest';
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
// every body in a pack: these tests rewrite and measure packs (helpers/packed.ts; inline bodies' compaction: inline-bodies.test.ts)
import { PackedStore as Store } from '../helpers/packed.js';
import type { StoreOptions } from '../../src/store/types.js';
import { scrub } from '../../src/scrub/scrub.js';
import { isDamage } from '../../src/scrub/findings.js';
import { Rng } from '../sim/faultfs.js';
import { expectCode } from '../sim/helpers.js';

/** A message of about `size` random bytes (incompressible, unique by `i`). */
export function body(i: number, size: number, seed = 7): Buffer {
  const rng = new Rng(seed * 1000 + i);
  const bytes = Buffer.alloc(size);
  for (let j = 0; j < size; j++) bytes[j] = 97 + rng.int(26);
  return Buffer.concat([Buffer.from(`From: a${i}@example.org\r\nSubject: m ${i}\r\n\r\n`), bytes]);
}

export function packsBytes(dir: string): number {
  const packs = join(dir, 'packs');
  return readdirSync(packs).filter((n) => n.endsWith('.pack')).reduce((sum, n) => sum + statSync(join(packs, n)).size, 0);
}

export function packNames(dir: string): string[] {
  return readdirSync(join(dir, 'packs')).filter((n) => n.endsWith('.pack')).sort();
}

/** 40 messages in M (one also in K), every uid not divisible by 5 expunged. */
export async function churned(dir: string, options: StoreOptions = {}) {
  const store = await Store.open(dir, { create: true, ...options });
  await store.createMailbox('M');
  await store.createMailbox('K');
  const bodies = new Map<number, Buffer>();
  for (let i = 1; i <= 40; i++) {
    const bytes = body(i, 2000 + (i % 7) * 900);
    bodies.set((await store.append('M', bytes)).uid, bytes);
  }
  await store.append('K', bodies.get(1)!);
  const gone = [...bodies.keys()].filter((u) => u % 5 !== 0);
  await store.expunge('M', gone);
  const live = [...bodies].filter(([u]) => u % 5 === 0).reduce((sum, [, b]) => sum + b.length, 0) + bodies.get(1)!.length;
  return { store, bodies, gone, live };
}

export async function expectExact(store: Store, bodies: Map<number, Buffer>, gone: number[]): Promise<void> {
  for (const [uid, bytes] of bodies) {
    if (gone.includes(uid)) await expectCode(store.fetch('M', uid), 'NOT_FOUND');
    else expect((await store.fetch('M', uid)).equals(bytes), `M ${uid}`).toBe(true);
  }
  expect((await store.fetch('K', 1)).equals(bodies.get(1)!), 'K 1: a body expunged in M but alive in K').toBe(true);
}

export async function expectScrubClean(store: Store): Promise<void> {
  const report = await scrub(store);
  expect(report.findings.filter(isDamage), JSON.stringify(report.findings.slice(0, 5))).toEqual([]);
}

/**
 * Deletes the index and opens the store again (a rebuild from the journal): not degraded, every
 * message exact, the caller's own checks (`more`), and scrub finds no damage.
 */
export async function expectExactAfterRebuild(dir: string, bodies: Map<number, Buffer>, gone: number[], more?: (rebuilt: Store) => Promise<void>): Promise<void> {
  rmSync(join(dir, 'index'), { recursive: true });
  const rebuilt = await Store.open(dir);
  try {
    expect(rebuilt.health.degraded, rebuilt.health.findings.join('; ')).toBe(false);
    await expectExact(rebuilt, bodies, gone);
    await more?.(rebuilt);
    await expectScrubClean(rebuilt);
  } finally {
    await rebuilt.close();
  }
}
