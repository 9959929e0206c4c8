// The per-message digest of `replica check` is a wire format (both sides must compute the same
// bytes): BLAKE3 of uid (u32 BE), hash (32 bytes), modseq (u64 BE), flags joined by NUL. It is
// built in a reused buffer, so a long record followed by a short one must not leak bytes.
import { describe, expect, it } from 'vitest';
import { hashBytes } from '../../src/hash/blake3.js';
import { messageDigest } from '../../src/replication/digest.js';
import type { MessageRecord } from '../../src/store/records.js';

function layout(uid: number, record: MessageRecord): Buffer {
  const flags = Buffer.from(record.f.join('\0'), 'utf8');
  const b = Buffer.alloc(44 + flags.length);
  b.writeUInt32BE(uid, 0);
  Buffer.from(record.h).copy(b, 4);
  b.writeBigUInt64BE(BigInt(record.m), 36);
  flags.copy(b, 44);
  return hashBytes(b);
}

const record = (fill: number, f: string[], m: number): MessageRecord => ({ h: Buffer.alloc(32, fill), s: 10, d: 0, f, m });

describe('messageDigest', () => {
  it('is BLAKE3 of the documented layout, whatever the records before it', () => {
    const cases: [number, MessageRecord][] = [
      [1, record(1, ['\\Seen', 'Ünïcode'], 2 ** 40 + 5)],
      [2, record(2, Array.from({ length: 800 }, (_, i) => `keyword-${i}`), 7)], // longer than the reused buffer
      [0xffffffff, record(3, [], 1)],
      [4, record(4, ['a'], 0)],
    ];
    for (const [uid, r] of cases) expect(messageDigest(uid, r).equals(layout(uid, r))).toBe(true);
    // the same record after a longer one: the same digest as first time
    expect(messageDigest(4, record(4, ['a'], 0)).equals(messageDigest(4, record(4, ['a'], 0)))).toBe(true);
    expect(messageDigest(4, record(4, ['a'], 0)).equals(messageDigest(4, record(4, ['b'], 0)))).toBe(false);
  });
});
