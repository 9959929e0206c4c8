// Open-time recovery steps (src/store/recovery.ts), each on its own: the torn journal tail (cut, or
// kept when the index proves it was acknowledged), the newest batch that never became durable (cut),
// and the quarantine copies made before anything is cut or replaced: nothing is deleted.
import { appendFileSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { PackStore } from '../../src/blob/pack-store.js';
import { hashBytes } from '../../src/hash/blake3.js';
import { encodeCbor } from '../../src/index/codec.js';
import { encodeRecord, fillerBytes } from '../../src/journal/journal-format.js';
import { Journal } from '../../src/journal/journal.js';
import { installIndex, moveAside, newHealth, resolveNewestBatch, resolveTail } from '../../src/store/recovery.js';
import type { JournalPayload, Op } from '../../src/store/records.js';
import { encodeRelocateEntries } from '../../src/store/blob-runs.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { tmpDir } from '../helpers/tmp.js';

const storeId = Buffer.from('a1a2a3a4a5a6a7a8a9aaabacadaeafb0', 'hex');
const mailbox = Buffer.alloc(16, 3);

async function openParts(root: string, fs = new FaultFileSystem()) {
  const journal = await Journal.open(fs, join(root, 'journal'), storeId, { segmentBytesMax: 1 << 20, recordBytesMax: 1 << 16, checkMounted: async () => undefined });
  const packs = await PackStore.open(fs, join(root, 'packs'), storeId, { packBytesMax: 1 << 20, checkMounted: async () => undefined });
  return { fs, journal, packs, health: newHealth() };
}

async function freshRoot() {
  const root = tmpDir('recovery');
  for (const sub of ['journal', 'packs', 'quarantine']) mkdirSync(join(root, sub));
  const parts = await openParts(root);
  await parts.journal.findTail();
  return { root, ...parts };
}

const meta = (n: number): Op => ({ op: 'meta.set', key: `k${n}`, value: n });
const payload = (ops: Op[], end: boolean): Buffer => encodeCbor({ ops, ...(end ? { end: true } : {}) } satisfies JournalPayload);

/** One group-commit batch: records `from`.., the last one carrying the batch-end marker. */
async function batch(journal: Journal, from: number, ops: Op[][]): Promise<void> {
  await journal.write(ops.map((o, i) => ({ seq: from + i, payload: payload(o, i === ops.length - 1) })));
  await journal.sync();
}

const quarantined = (root: string, prefix: string) => readdirSync(join(root, 'quarantine')).filter((n) => n.startsWith(prefix));
const segment = (root: string) => join(root, 'journal', '0000000000000001.jnl');

describe('resolveTail', () => {
  it('a torn tail past the high-water mark is copied to quarantine, then cut', async () => {
    const { root, journal } = await freshRoot();
    await batch(journal, 1, [[meta(1)], [meta(2)]]);
    await journal.close();
    const end = statSync(segment(root)).size;
    const torn = encodeRecord(3, payload([meta(3)], true)).subarray(0, 20);
    appendFileSync(segment(root), torn);
    const parts = await openParts(root);
    expect(await resolveTail(parts.fs, root, parts.journal, 2, parts.health)).toBe(2);
    expect(statSync(segment(root)).size).toBe(end);
    expect(parts.health).toMatchObject({ degraded: false, tornTailBytes: 20 });
    const [copy] = quarantined(root, 'journal-tail-');
    expect(readFileSync(join(root, 'quarantine', copy)).equals(torn)).toBe(true);
    await parts.journal.close();
  });

  it('a second torn tail at the same place and the same clock reading gets its own copy (the first is never replaced)', async () => {
    const { root, journal } = await freshRoot();
    await batch(journal, 1, [[meta(1)], [meta(2)]]);
    await journal.close();
    const now = vi.spyOn(Date, 'now').mockReturnValue(Date.UTC(2026, 11, 5)); // a clock stepped back repeats its readings
    try {
      const torn = [encodeRecord(3, payload([meta(3)], true)).subarray(0, 20), encodeRecord(3, payload([meta(30)], true)).subarray(0, 24)];
      for (const bytes of torn) {
        appendFileSync(segment(root), bytes);
        const parts = await openParts(root);
        expect(await resolveTail(parts.fs, root, parts.journal, 2, parts.health)).toBe(2);
        await parts.journal.close();
      }
      const copies = quarantined(root, 'journal-tail-').map((n) => readFileSync(join(root, 'quarantine', n)));
      expect(copies).toHaveLength(2);
      expect(torn.every((bytes) => copies.some((copy) => copy.equals(bytes)))).toBe(true);
    } finally {
      now.mockRestore();
    }
  });

  it('an all-zero tail is cut without a quarantine copy (nothing was written there)', async () => {
    const { root, journal } = await freshRoot();
    await batch(journal, 1, [[meta(1)]]);
    await journal.close();
    const end = statSync(segment(root)).size;
    appendFileSync(segment(root), Buffer.alloc(4096));
    const parts = await openParts(root);
    await resolveTail(parts.fs, root, parts.journal, 0, parts.health);
    expect(statSync(segment(root)).size).toBe(end);
    expect(quarantined(root, 'journal-tail-')).toEqual([]);
    await parts.journal.close();
  });

  it('filler to the end is preallocated space: left in place, nothing cut or reported', async () => {
    const { root, journal } = await freshRoot();
    await batch(journal, 1, [[meta(1)]]);
    await journal.close();
    const end = statSync(segment(root)).size;
    appendFileSync(segment(root), fillerBytes(end, 4096));
    const parts = await openParts(root);
    expect(await resolveTail(parts.fs, root, parts.journal, 1, parts.health)).toBe(1);
    expect(statSync(segment(root)).size).toBe(end + 4096);
    expect(parts.health).toMatchObject({ degraded: false, findings: [] });
    expect(parts.health.tornTailBytes ?? 0).toBe(0);
    await parts.journal.close();
  });

  it('acknowledged records zeroed before the filler (index beyond them) are reported, never taken for unused space', async () => {
    const { root, journal } = await freshRoot();
    await batch(journal, 1, [[meta(1)], [meta(2)], [meta(3)]]);
    await journal.close();
    const bytes = readFileSync(segment(root));
    const third = bytes.lastIndexOf('MSJR');
    writeFileSync(segment(root), Buffer.concat([bytes.subarray(0, third), Buffer.alloc(bytes.length - third), fillerBytes(bytes.length, 4096)]));
    const parts = await openParts(root);
    expect(await resolveTail(parts.fs, root, parts.journal, 3, parts.health)).toBe(3);
    expect(parts.health.degraded).toBe(true);
    expect(parts.health.journalDamage).toEqual([{ segment: expect.any(String), offset: third, length: bytes.length - third, where: 'tail' }]);
    expect(parts.health.findings.join('\n')).toMatch(/acknowledged records 3\.\.3 are damaged/);
    expect(statSync(segment(root)).size).toBe(bytes.length + 4096); // kept in place
    await parts.journal.close();
  });

  it('a damaged tail the index had applied (high-water mark beyond it) is kept, reported, copied; new records go to a new segment', async () => {
    const { root, journal } = await freshRoot();
    await batch(journal, 1, [[meta(1)], [meta(2)], [meta(3)]]);
    await journal.close();
    const damaged = readFileSync(segment(root));
    const third = damaged.lastIndexOf('MSJR');
    damaged[third + 30] ^= 0xff; // record 3's payload: the segment now ends in damaged bytes
    const size = damaged.length;
    writeFileSync(segment(root), damaged);
    const parts = await openParts(root);
    expect(await resolveTail(parts.fs, root, parts.journal, 3, parts.health)).toBe(3);
    expect(statSync(segment(root)).size).toBe(size); // not cut: acknowledged bytes are evidence
    expect(parts.health.degraded).toBe(true);
    expect(parts.health.journalDamage).toEqual([{ segment: '0000000000000001.jnl', offset: third, length: size - third, where: 'tail' }]);
    expect(parts.health.findings.join('\n')).toMatch(/acknowledged records 3\.\.3 are damaged/);
    expect(quarantined(root, 'journal-tail-')).toHaveLength(1);
    await batch(parts.journal, 4, [[meta(4)]]);
    expect(parts.journal.segmentNames).toEqual(['0000000000000001.jnl', '0000000000000004.jnl']);
    await parts.journal.close();
  });

  it('the same damaged tail found by open after open (a CLI command each, a daemon restarted) is copied to quarantine once, not once per open', async () => {
    const { root, journal } = await freshRoot();
    await batch(journal, 1, [[meta(1)], [meta(2)], [meta(3)]]);
    await journal.close();
    const damaged = readFileSync(segment(root));
    damaged[damaged.lastIndexOf('MSJR') + 30] ^= 0xff;
    writeFileSync(segment(root), damaged);
    for (let open = 0; open < 3; open++) { // nothing written in between: the new segment is made by the next write
      const parts = await openParts(root);
      expect(await resolveTail(parts.fs, root, parts.journal, 3, parts.health)).toBe(3);
      expect(parts.health.findings.join('\n')).toMatch(/acknowledged records 3\.\.3 are damaged.*a copy is in quarantine/);
      await parts.journal.close();
    }
    expect(quarantined(root, 'journal-tail-')).toHaveLength(1);
  });

  it('a journal that ends before the high-water mark is reported as missing records', async () => {
    const { root, journal, fs, health } = await freshRoot();
    await batch(journal, 1, [[meta(1)]]);
    expect(await resolveTail(fs, root, journal, 5, health)).toBe(5);
    expect(health.degraded).toBe(true);
    expect(health.findings.join('\n')).toMatch(/up to 5 but the journal ends at 1/);
    await journal.close();
  });

  it('a newest segment with no valid header and no record, past the high-water mark, is moved to quarantine, not deleted', async () => {
    const { root, journal } = await freshRoot();
    await batch(journal, 1, [[meta(1)]]);
    await journal.close();
    const torn = join(root, 'journal', '0000000000000002.jnl');
    appendFileSync(torn, Buffer.from('MSJS half a header'));
    const parts = await openParts(root);
    expect(await resolveTail(parts.fs, root, parts.journal, 1, parts.health)).toBe(1);
    expect(readdirSync(join(root, 'journal'))).toEqual(['0000000000000001.jnl']);
    const [moved] = quarantined(root, 'journal-segment-0000000000000002.jnl-');
    expect(readFileSync(join(root, 'quarantine', moved)).toString()).toBe('MSJS half a header');
    expect(parts.health.tornTailBytes).toBe(18);
    await parts.journal.close();
  });
});

describe('resolveNewestBatch', () => {
  it('records after the last batch-end marker (an incomplete batch) are copied to quarantine and cut', async () => {
    const { root, journal } = await freshRoot();
    await batch(journal, 1, [[meta(1)]]);
    const complete = statSync(segment(root)).size;
    await journal.write([2, 3].map((seq) => ({ seq, payload: payload([meta(seq)], false) }))); // the end marker never came
    await journal.sync();
    await journal.close();
    const tail = readFileSync(segment(root)).subarray(complete);
    const parts = await openParts(root);
    await resolveTail(parts.fs, root, parts.journal, 1, parts.health);
    await resolveNewestBatch(parts.fs, root, parts.journal, parts.packs, 1, parts.health);
    expect(statSync(segment(root)).size).toBe(complete);
    expect(parts.journal.lastSeq).toBe(1);
    const [copy] = quarantined(root, 'journal-batch-2-3-');
    expect(readFileSync(join(root, 'quarantine', copy)).equals(tail)).toBe(true);
    expect(parts.health.tornTailBytes).toBe(tail.length);
    await parts.journal.close();
  });

  async function batchWithBlob(durable: boolean, as: 'add' | 'relocateRun' = 'add') {
    const setup = await freshRoot();
    await batch(setup.journal, 1, [[meta(1)]]);
    const bytes = Buffer.from('Subject: newest\r\n\r\nbody\r\n');
    const hash = hashBytes(bytes);
    let location = { pack: 1, offset: 32, length: bytes.length };
    if (durable) {
      const b = setup.packs.beginBatch();
      location = b.reserve(hash, bytes);
      await setup.packs.write(b);
      await setup.packs.sync();
    }
    const add: Op = as === 'add'
      ? { op: 'message.add', id: mailbox, uid: 1, hash, size: bytes.length, date: 0, flags: [], pack: location.pack, offset: location.offset, fresh: true }
      : { op: 'blob.relocateRun', from: 7, to: location.pack, entries: encodeRelocateEntries([{ hash, from: 32, to: location.offset, size: bytes.length }]) }; // a compaction's copy
    const before = statSync(segment(setup.root)).size;
    await batch(setup.journal, 2, [[meta(2)], [add]]);
    await setup.journal.close();
    await setup.packs.close();
    return { ...setup, before };
  }

  it('a complete newest batch whose new blob does not read back was never acknowledged: quarantined and cut', async () => {
    const { root, before } = await batchWithBlob(false);
    const parts = await openParts(root);
    await resolveTail(parts.fs, root, parts.journal, 1, parts.health);
    await resolveNewestBatch(parts.fs, root, parts.journal, parts.packs, 1, parts.health);
    expect(statSync(segment(root)).size).toBe(before);
    expect(parts.health.findings.join('\n')).toMatch(/records 2\.\.3: a batch whose message bodies were not durable/);
    expect(quarantined(root, 'journal-batch-2-3-')).toHaveLength(1);
    await parts.journal.close();
  });

  it('a newest batch of a compaction (blob.relocateRun) whose copy does not read back is cut; kept when the copy is durable', async () => {
    for (const durable of [false, true]) {
      const { root, before } = await batchWithBlob(durable, 'relocateRun');
      const size = statSync(segment(root)).size;
      const parts = await openParts(root);
      await resolveTail(parts.fs, root, parts.journal, 1, parts.health);
      await resolveNewestBatch(parts.fs, root, parts.journal, parts.packs, 1, parts.health);
      expect(statSync(segment(root)).size, `durable ${durable}`).toBe(durable ? size : before);
      expect(quarantined(root, 'journal-batch-2-3-'), `durable ${durable}`).toHaveLength(durable ? 0 : 1);
      await parts.journal.close();
      await parts.packs.close();
    }
  });

  it('the same batch is kept when the index had applied it, or when its blob is durable', async () => {
    for (const [durable, highWater] of [[false, 3], [true, 1]] as const) {
      const { root } = await batchWithBlob(durable);
      const size = statSync(segment(root)).size;
      const parts = await openParts(root);
      await resolveTail(parts.fs, root, parts.journal, highWater, parts.health);
      await resolveNewestBatch(parts.fs, root, parts.journal, parts.packs, highWater, parts.health);
      expect(statSync(segment(root)).size, `durable ${durable}`).toBe(size);
      expect(parts.health.findings, `durable ${durable}`).toEqual([]);
      expect(quarantined(root, 'journal-batch-')).toEqual([]);
      await parts.journal.close();
      await parts.packs.close();
    }
  });
});

describe('quarantine copies', () => {
  it('moveAside moves a directory into quarantine/ under its label; a missing one is a no-op', async () => {
    const { root, fs } = await freshRoot();
    mkdirSync(join(root, 'index'));
    appendFileSync(join(root, 'index', 'CURRENT'), 'MANIFEST-000001\n');
    const target = await moveAside(fs, root, join(root, 'index'), 'index-damaged');
    expect(target).toMatch(new RegExp(`^${join(root, 'quarantine', 'index-damaged-')}`));
    expect(readFileSync(join(target!, 'CURRENT'), 'utf8')).toBe('MANIFEST-000001\n');
    expect(readdirSync(root)).not.toContain('index');
    expect(await moveAside(fs, root, join(root, 'index'), 'index-damaged')).toBeUndefined();
  });

  it('moveAside syncs quarantine/, where the name went: a power cut after it keeps the move (before: the root was synced, the move could be undone)', async () => {
    const root = tmpDir('recovery');
    mkdirSync(join(root, 'quarantine'));
    writeFileSync(join(root, 'REPLICATION-PENDING'), 'damaged frames');
    const fs = new FaultFileSystem();
    await fs.startRecording(root);
    const target = await moveAside(fs, root, join(root, 'REPLICATION-PENDING'), 'REPLICATION-PENDING-damaged');
    expect(fs.ops().filter((op) => op.kind === 'syncDir').map((op) => op.path)).toContain(join(root, 'quarantine'));
    const crashed = tmpDir('recovery-crash');
    await fs.materializeCrash(crashed, fs.logLength, 1, { mode: 'all-lost' }); // only what was made durable
    expect(readdirSync(join(crashed, 'quarantine'))).toEqual([target!.slice(join(root, 'quarantine').length + 1)]);
    expect(readdirSync(crashed)).not.toContain('REPLICATION-PENDING');
  });

  it('installIndex puts a built index in place and keeps the one it replaces in quarantine/', async () => {
    const { root, fs } = await freshRoot();
    for (const [dir, text] of [['index', 'old'], ['index.rebuild', 'new']]) {
      mkdirSync(join(root, dir));
      appendFileSync(join(root, dir, 'CURRENT'), text);
    }
    await installIndex(fs, root, join(root, 'index.rebuild'));
    expect(readFileSync(join(root, 'index', 'CURRENT'), 'utf8')).toBe('new');
    const [old] = quarantined(root, 'index-replaced-');
    expect(readFileSync(join(root, 'quarantine', old, 'CURRENT'), 'utf8')).toBe('old');
    expect(readdirSync(root)).not.toContain('index.rebuild');
  });
});
