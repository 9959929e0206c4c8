// Index format 1 -> 2 (docs/FORMAT.md, "Index values"). Format 1 framed each value with the CRC32
// of its body alone, so a value LevelDB returned under a flipped key read as valid; format 2's
// CRC32 covers key and body. An index without the format marker is converted in place when it is
// opened: every value whose format 1 checksum holds is framed again with its key, then the marker
// is written, last. Nothing is rebuilt, so nothing depends on the journal or a snapshot being
// there, and nothing is lost: a value is only ever replaced by the same body under a new checksum.
import { Buffer } from 'node:buffer';
import { MailstoreError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { INDEX_FORMAT, encodeValue, reframeFormat1, valueChecksumHolds } from '../index/codec.js';
import type { BatchOp, IndexDb } from '../index/index-db.js';
import { checkIndexFiles } from '../index/table-check.js';
import { limits } from '../limits.js';
import { meta } from './apply.js';
import type { Health } from './recovery.js';
import { monotonicMs } from '../monotonic.js';

/**
 * Converts `db` to INDEX_FORMAT when it is of format 1 (no marker); a no-op on a current index.
 *
 * The tables are verified first (every block's CRC32C, as scrub does): a key flipped in a table
 * before the upgrade would otherwise get a valid format 2 checksum under the wrong key. Damage, in
 * a table or a value's format 1 checksum, is CORRUPT: the caller rebuilds the index instead.
 * Idempotent: a conversion a crash interrupted is done again at the next open (values already
 * framed with their key are left alone; LevelDB keeps its writes in order, so a marker that
 * survived a crash means every batch before it did).
 */
export async function upgradeIndexFormat(fs: FileSystem, db: IndexDb, health: Health): Promise<void> {
  const format = db.getNow<number>(meta.indexFormat);
  if (format === INDEX_FORMAT) return;
  if (format !== undefined) {
    throw new MailstoreError('REFUSED', `the index at ${db.path} is of format ${format}, which this mailstore does not know (it writes ${INDEX_FORMAT}): run the newer version`, { path: db.path });
  }
  const started = monotonicMs();
  const files = await checkIndexFiles(fs, db.path);
  if (files.damage.length > 0) {
    const d = files.damage[0];
    throw new MailstoreError('CORRUPT', `the index at ${db.path} (format 1) is not converted: ${d.file}: ${d.detail}`, { path: db.path });
  }
  const converted = await reframeAll(db);
  await db.write([{ type: 'put', key: meta.indexFormat, value: encodeValue(meta.indexFormat, INDEX_FORMAT) }]);
  health.indexUpgraded = `index converted from format 1 to ${INDEX_FORMAT} (checksums over key and value): ${converted} values in ${Math.round(monotonicMs() - started)} ms`;
}

/** Every value framed again with its key, in batches; returns how many were. */
async function reframeAll(db: IndexDb): Promise<number> {
  await db.settle();
  let ops: BatchOp[] = [];
  let converted = 0;
  for await (const [key, value] of db.rawIterator({ gte: Buffer.alloc(0), lt: Buffer.from([0xff, 0xff]) })) {
    if (valueChecksumHolds(key, value)) continue; // converted before a crash interrupted the upgrade
    const framed = reframeFormat1(key, value);
    if (!framed) {
      throw new MailstoreError('CORRUPT', `index value for key ${key.toString('hex')} fails its checksum (format 1): the index is not converted; run 'mailstore reconstruct' to rebuild it from the journal`, { path: key.toString('hex') });
    }
    ops.push({ type: 'put', key, value: framed });
    converted++;
    if (ops.length >= limits.indexUpgradeBatchKeys) {
      await db.write(ops);
      ops = [];
    }
  }
  await db.write(ops);
  return converted;
}
