// checkRecordSize skips encoding a record it can bound (recordBytesBound: message.add ops at their
// largest): the bound must never be below what the record really encodes to, or a record the limit
// refuses would be written and a reopen would read it as damage.
import { describe, expect, it } from 'vitest';
import { encodeCbor } from '../../src/index/codec.js';
import { limits } from '../../src/limits.js';
import { recordBytesBound } from '../../src/store/prepare.js';
import type { Op } from '../../src/store/records.js';
import { prng } from '../helpers/prng.js';

const encoded = (ops: Op[], inlineBytes = 0) => encodeCbor({ ops, end: true }).length + inlineBytes;

function messageAdd(random: () => number, largest: boolean): Op {
  const pick = (max: number) => (largest ? max : Math.floor(random() * (max + 1)));
  // the same characters as String.fromCharCode(...).join('') with '\\' as 'x', one random() each,
  // built in a buffer: 64 flags of ~128 characters an op, ~80 M characters over the 500 records
  const printable = (n: number) => {
    const bytes = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) {
      const c = 0x21 + Math.floor(random() * 94);
      bytes[i] = c === 0x5c ? 0x78 : c;
    }
    return bytes.toString('latin1');
  };
  const op: Op = {
    op: 'message.add', id: Buffer.alloc(16, 7), uid: largest ? 0xffffffff : pick(1000), hash: Buffer.alloc(32, 9),
    size: largest ? Number.MAX_SAFE_INTEGER : pick(1e9), date: largest ? limits.internalDateMsMax : pick(1e12) + random(),
    flags: Array.from({ length: pick(limits.flagsPerMessageMax) }, () => printable(Math.max(1, pick(limits.flagBytesMax)))),
    pack: pick(0xffffffff), offset: largest ? Number.MAX_SAFE_INTEGER : pick(1e12),
  };
  if (largest || random() < 0.5) op.fresh = true;
  if (largest || random() < 0.3) op.modseq = largest ? Number.MAX_SAFE_INTEGER : pick(1e6);
  if (largest || random() < 0.5) op.envelopeFrom = printable(Math.max(1, pick(limits.envelopeFromBytesMax)));
  if (largest || random() < 0.5) op.dateZone = largest ? limits.dateZoneMinutesMin : pick(1500) - 720;
  if (largest || random() < 0.5) op.recent = true;
  return op;
}

describe('recordBytesBound', () => {
  it('is never below the encoded size: message.add ops with every field at its largest', () => {
    const random = prng(1);
    for (const count of [1, 2, 50]) {
      const ops = Array.from({ length: count }, () => messageAdd(random, true));
      const meta: Op = { op: 'meta.set', key: 'user/import/x', value: { done: 5, retry: [{ position: 1, entry: 'e'.repeat(300) }] } };
      expect(recordBytesBound(ops, 100)).toBeGreaterThanOrEqual(encoded(ops, 100));
      expect(recordBytesBound([...ops, meta])).toBeGreaterThanOrEqual(encoded([...ops, meta]));
      expect(recordBytesBound(ops)).toBeLessThan(Number.POSITIVE_INFINITY);
    }
  });

  it('is never below the encoded size: 500 seeded random records', () => {
    for (let seed = 1; seed <= 500; seed++) {
      const random = prng(seed);
      const ops = Array.from({ length: 1 + Math.floor(random() * 40) }, () => messageAdd(random, false));
      expect(recordBytesBound(ops), `seed ${seed}`).toBeGreaterThanOrEqual(encoded(ops));
    }
  });

  it('gives up (Infinity, so the record is encoded) for what it was not made for', () => {
    const base = messageAdd(prng(2), false);
    const outside: Op[] = [
      { ...base, body: Buffer.alloc(10) },
      { ...base, flags: ['ä'.repeat(200)] }, // 400 UTF-8 bytes
      { ...base, flags: Array.from({ length: limits.flagsPerMessageMax + 1 }, () => 'k') },
      { ...base, envelopeFrom: 'x'.repeat(limits.envelopeFromBytesMax + 1) },
      { ...base, hash: Buffer.alloc(64) },
      { ...base, unexpected: 'x'.repeat(100_000) } as Op,
    ];
    for (const op of outside) expect(recordBytesBound([op])).toBe(Number.POSITIVE_INFINITY);
  });
});
