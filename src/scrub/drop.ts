// scrub --repair --drop-unreferenced: damage to a blob that no message uses is cleared by recording
// it as dropped, never by deleting bytes. One journaled meta.set per blob (`scrub/dropped/<hash>`,
// so an index rebuilt from the journal, or a checkpoint, keeps it); later scrubs report such a
// blob as informational ('dropped-blob') for as long as no message refers to it. Its damaged bytes
// were copied to quarantine/ first and stay in their pack.
import { meta } from '../store/apply.js';
import { keys } from '../keys/index-keys.js';
import { limits } from '../limits.js';
import type { Store } from '../store/store.js';
import type { BlobRecord } from '../store/records.js';
import type { Finding } from './findings.js';

/** What the index records about a dropped blob: where its damaged copy was. */
export interface DroppedBlob {
  p: number;
  o: number;
  l: number;
  /** When it was dropped, ms since epoch. */
  at: number;
}

export function droppedKey(hashHex: string): Buffer {
  return meta.named(`scrub/dropped/${hashHex}`);
}

type BlobDamage = Extract<Finding, { kind: 'blob-corrupt' | 'blob-missing' }>;

export function isUnreferencedBlobDamage(finding: Finding): finding is BlobDamage {
  return (finding.kind === 'blob-corrupt' || finding.kind === 'blob-missing') && finding.refs.length === 0;
}

/**
 * Records each unreferenced damaged blob as dropped. The check that no message uses it is made
 * again inside the commit (the writer's view), so an append that deduplicated onto it since the
 * scrub keeps it damage. Returns the hashes dropped.
 */
export async function dropUnreferenced(store: Store, damaged: BlobDamage[], now = Date.now()): Promise<string[]> {
  const dropped: string[] = [];
  // Bounded records, as repair's relocations: each one commits on its own.
  for (let i = 0; i < damaged.length; i += limits.repairRelocateBlobs) dropped.push(...(await dropBatch(store, damaged.slice(i, i + limits.repairRelocateBlobs), now)));
  return dropped;
}

function dropBatch(store: Store, damaged: BlobDamage[], now: number): Promise<string[]> {
  return store.administration().mutate({
    prepare: async ({ view }) => {
      const dropped: string[] = [];
      const ops = [];
      for (const f of damaged) {
        const blob = await view.get<BlobRecord>(keys.blob(Buffer.from(f.hash, 'hex')));
        if (!blob || blob.r !== 0 || blob.p !== f.pack || blob.o !== f.offset) continue;
        const value: DroppedBlob = { p: blob.p, o: blob.o, l: blob.l, at: now };
        ops.push({ op: 'meta.set' as const, key: `scrub/dropped/${f.hash}`, value });
        dropped.push(f.hash);
      }
      return { ops, result: dropped };
    },
  });
}

/**
 * Replaces damage to a blob recorded as dropped (at the same location, still used by no message)
 * with an informational 'dropped-blob' finding.
 */
export async function classifyDropped(store: Store, findings: Finding[]): Promise<void> {
  for (let i = 0; i < findings.length; i++) {
    const f = findings[i];
    if (!isUnreferencedBlobDamage(f)) continue;
    const dropped = await store.maintenance().index.get<DroppedBlob>(droppedKey(f.hash)).catch(() => undefined);
    if (!dropped || dropped.p !== f.pack || dropped.o !== f.offset) continue;
    findings[i] = { kind: 'dropped-blob', hash: f.hash, pack: f.pack, offset: f.offset, length: dropped.l, at: dropped.at };
  }
}
