// Scrub's journal pass counts what each record's ops leave live from the CBOR bytes (journal-tally.ts)
// instead of cbor-x's objects: the tally must be exactly what the decoded payload gives, or leave the
// record to cbor-x. A tally read otherwise would turn a healthy store's totals into an
// index-journal-mismatch, or hide one.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { damagedBytes } from '../helpers/damaged-bytes.js';
import { Store } from '../../src/store/store.js';
import { decodeCbor, encodeCbor } from '../../src/index/codec.js';
import { tallyOps, type OpsTally } from '../../src/scrub/journal-tally.js';
import type { JournalPayload } from '../../src/store/records.js';
import { scrub } from '../../src/scrub/scrub.js';
import { isDamage } from '../../src/scrub/findings.js';
import { recount } from '../helpers/recount.js';
import { RECOUNT_META } from '../../src/scrub/recount.js';
import { internalsOf } from '../helpers/internals.js';
import { SPACE } from '../../src/keys/tuple.js';
import { tmpDir } from '../helpers/tmp.js';

/** The tally as scrub counted it from cbor-x's object (countLive and checkpointBegin). */
function fromDecoded(payload: JournalPayload): OpsTally {
  const tally: OpsTally = { begin: payload.ops[0]?.op === 'state.begin', end: Boolean(payload.end), mailboxCreates: 0, stateMailboxes: 0, mailboxDeleteEnds: 0, messageAdds: 0, stateMessages: 0, expungedUids: 0 };
  for (const op of payload.ops) {
    switch (op.op) {
      case 'mailbox.create': tally.mailboxCreates++; break;
      case 'state.mailbox': tally.stateMailboxes++; break;
      case 'mailbox.deleteEnd': tally.mailboxDeleteEnds++; break;
      case 'message.add': tally.messageAdds++; break;
      case 'state.messages': tally.stateMessages += op.messages.length; break;
      case 'message.expunge': tally.expungedUids += op.uids.length; break;
      default: break;
    }
  }
  return tally;
}

/** Every record payload of a store that went through most kinds of op, a checkpoint and a recount. */
async function realPayloads(): Promise<Buffer[]> {
  const store = await Store.open(tmpDir(), { create: true });
  try {
    await store.createMailbox('user/alice/INBOX', { owner: 'alice' });
    await store.createMailbox('user/alice/Trash', { owner: 'alice', acl: { bob: 'lr' } });
    const body = (i: number) => Buffer.from(`From: a@example.org\r\nSubject: ${i} ümlaut\r\n\r\nbody ${i}\r\n`);
    await store.appendBatch('user/alice/INBOX', Array.from({ length: 40 }, (_, i) => ({ bytes: body(i), flags: i % 3 ? ['\\Seen', '$Label1'] : [], envelopeFrom: `s${i}@example.org` })));
    await store.append('user/alice/Trash', body(1)); // deduplicated
    await store.setFlags('user/alice/INBOX', [1, 2, 3], { add: ['\\Flagged'] });
    await store.expunge('user/alice/INBOX', [4, 5, 6]);
    await store.setAcl('user/alice/INBOX', 'carol', 'lrs');
    await store.renameMailbox('user/alice/Trash', 'user/alice/Deleted');
    await store.deleteMailbox('user/alice/Deleted');
    await store.snapshot();
    await recount(store);
    await store.compact();
    const payloads: Buffer[] = [];
    for await (const record of store.maintenance().journal.read(0, () => undefined)) payloads.push(Buffer.from(record.payload));
    return payloads;
  } finally {
    await store.close();
  }
}

describe('tallyOps', () => {
  it('tallies every record a store writes as cbor-x\'s object counts, leaving only a recount\'s records to cbor-x', async () => {
    const payloads = await realPayloads();
    let tallied = 0;
    for (const bytes of payloads) {
      const decoded = decodeCbor<JournalPayload>(bytes);
      const tally = tallyOps(bytes);
      if (decoded.ops.some((op) => op.op === 'meta.set' && op.key === RECOUNT_META)) {
        expect(tally).toBeUndefined();
        continue;
      }
      expect(tally).toStrictEqual(fromDecoded(decoded));
      tallied++;
    }
    expect(tallied).toBeGreaterThan(8);
    const total = payloads.map(tallyOps).filter((t) => t !== undefined).reduce((sum, t) => sum + t!.messageAdds + t!.expungedUids, 0);
    expect(total).toBeGreaterThanOrEqual(44); // the appends and the expunge were counted here, not left to cbor-x
  });

  it('tallies a meta.set of another key (an import\'s progress) as counting nothing', () => {
    const bytes = encodeCbor({ ops: [{ op: 'meta.set', key: 'user/import/16', value: { done: 159, source: '/x.mbox' } }, { op: 'message.add', id: Buffer.alloc(16), uid: 1 }, { op: 'meta.set', key: 7, value: 1 }], end: true });
    expect(tallyOps(bytes)).toStrictEqual({ begin: false, end: true, mailboxCreates: 0, stateMailboxes: 0, mailboxDeleteEnds: 0, messageAdds: 1, stateMessages: 0, expungedUids: 0 });
  });

  it('tallies a checkpoint (begin, state ops, end)', () => {
    const id = Buffer.alloc(16, 1);
    const payload = {
      ops: [
        { op: 'state.begin', seq: 9, uidValidity: 3 },
        { op: 'state.mailbox', id, info: { name: ['INBOX'], uidNext: 5, acl: { alice: 'lrswipkxtea' } } },
        { op: 'state.messages', id, messages: [[1, Buffer.alloc(32, 2), 10, 1.5e12, ['\\Seen'], 3], [2, Buffer.alloc(32, 3), 11, 1.5e12, [], 4, { e: 'x@y' }]] },
      ],
      end: true,
    };
    const bytes = encodeCbor(payload);
    expect(tallyOps(bytes)).toStrictEqual({ begin: true, end: true, mailboxCreates: 0, stateMailboxes: 1, mailboxDeleteEnds: 0, messageAdds: 0, stateMessages: 2, expungedUids: 0 });
    expect(tallyOps(bytes)).toStrictEqual(fromDecoded(decodeCbor(bytes)));
  });

  it('leaves other shapes to cbor-x', () => {
    const add = { op: 'message.add', id: Buffer.alloc(16), uid: 1 };
    const cases: Buffer[] = [
      encodeCbor({ ops: [{ op: 'meta.set', key: RECOUNT_META, value: { mailboxes: 1, messages: 2 } }] }), // restates the totals
      encodeCbor({ ops: [{ op: 'meta.set', key: 'scrub/recountéd', value: 1 }] }), // a key cbor-x's reading decides
      encodeCbor({ ops: [add], end: 1 }), // end not a boolean
      encodeCbor({ ops: [{ op: 'message.expunge', id: Buffer.alloc(16), uids: 3 }] }), // uids not a list
      encodeCbor({ ops: [{ op: 'state.messages' }] }), // no messages
      encodeCbor({ ops: [{ uid: 1 }] }), // an op with no name
      encodeCbor({ ops: [{ op: 7 }] }),
      encodeCbor({ ops: {} }), encodeCbor({ end: true }), encodeCbor([add]), encodeCbor(null),
      encodeCbor({ ops: [{ ...add, date: new Date(0) }] }), // a tag
      Buffer.concat([encodeCbor({ ops: [add] }), Buffer.of(0)]), // trailing bytes
      encodeCbor({ ops: [add] }).subarray(0, 10), // cut short
      Buffer.from('a163', 'hex'), Buffer.alloc(0),
      // {ops: [{op: 'message.add', op: 'state.begin'}]}: a repeated key, whose last value cbor-x keeps
      Buffer.concat([Buffer.from('a1636f707381a2626f70', 'hex'), encodeCbor('message.add'), Buffer.from('626f70', 'hex'), encodeCbor('state.begin')]),
      // {ops: [...]} as an indefinite-length array
      Buffer.concat([Buffer.from('a1636f70739f', 'hex'), encodeCbor(add), Buffer.of(0xff)]),
      // 'op' as an overlong UTF-8 form of 'o' (0xc1 0xaf) that cbor-x's reader takes as 'o'
      Buffer.concat([Buffer.from('a1636f707381a163c1af70', 'hex'), encodeCbor('message.add')]),
    ];
    for (const bytes of cases) expect(tallyOps(bytes), bytes.toString('hex')).toBeUndefined();
  });

  it('steps over a field nested up to 32 levels deep (maps and arrays) and leaves a deeper one to cbor-x', () => {
    // a field's value at depth 1 (skip's first level), wrapped until the innermost item is at `depth`
    const nested = (depth: number) => {
      let value: unknown = 1;
      for (let d = depth; d > 1; d--) value = d % 2 ? [value, 'x'] : { k: value, 7: [] };
      return encodeCbor({ ops: [{ op: 'message.add', id: Buffer.alloc(16), uid: 1, deep: value }], end: true });
    };
    expect(tallyOps(nested(32))).toStrictEqual(fromDecoded(decodeCbor(nested(32))));
    expect(tallyOps(nested(32))?.messageAdds).toBe(1);
    expect(tallyOps(nested(33))).toBeUndefined();
    // a map key that is neither text nor a number (a byte string), in a nested map
    const byteKey = Buffer.concat([Buffer.from('a1636f707381a2626f70', 'hex'), encodeCbor('message.add'), Buffer.from('6178a1', 'hex'), encodeCbor(Buffer.of(1)), encodeCbor(2)]);
    expect(tallyOps(byteKey)).toBeUndefined();
  });

  it('never tallies an op-like payload otherwise than its decoded object', () => {
    const name = fc.constantFrom('meta.set', 'message.add', 'message.expunge', 'state.messages', 'state.mailbox', 'state.begin', 'mailbox.create', 'mailbox.deleteEnd', 'message.flags', 'mailbox.rename', 'x');
    const scalar = fc.oneof(fc.nat(), fc.integer({ min: -(2 ** 40), max: -1 }), fc.double(), fc.boolean(), fc.constant(null), fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)), fc.string({ maxLength: 30 }));
    const value = fc.oneof(scalar, fc.array(scalar, { maxLength: 30 }), fc.dictionary(fc.string({ unit: fc.constantFrom(...'abcxyz_'), maxLength: 6 }), scalar, { maxKeys: 4 }));
    const op = fc.tuple(name, fc.dictionary(fc.constantFrom('id', 'uid', 'flags', 'set', 'e', 'pack', 'offset', 'uids', 'messages', 'key'), value, { maxKeys: 4 }), fc.array(fc.array(scalar, { maxLength: 7 }), { maxLength: 5 }))
      .map(([n, fields, list]) => (n === 'state.messages' ? { op: n, ...fields, messages: list } : n === 'message.expunge' ? { op: n, ...fields, uids: list }
        : n === 'meta.set' && list.length === 1 ? { op: n, ...fields, key: RECOUNT_META } : { op: n, ...fields }));
    let talliedHere = 0;
    fc.assert(fc.property(fc.array(op, { maxLength: 12 }), fc.option(fc.boolean()), (ops, end) => {
      const bytes = encodeCbor(end === null ? { ops } : { ops, end });
      const tally = tallyOps(bytes);
      const decoded = decodeCbor<JournalPayload>(bytes);
      if (decoded.ops.some((o) => o.op === 'meta.set' && o.key === RECOUNT_META)) expect(tally).toBeUndefined();
      if (tally === undefined) return;
      talliedHere++;
      expect(tally).toStrictEqual(fromDecoded(decoded));
    }), { numRuns: 1000 });
    expect(talliedHere).toBeGreaterThan(250); // the comparison ran, not only the fallback
  });

  it('never tallies bytes cbor-x refuses or reads otherwise (damaged records)', async () => {
    const payloads = (await realPayloads()).filter((bytes) => tallyOps(bytes) !== undefined);
    fc.assert(fc.property(damagedBytes(payloads), (bytes) => {
      const tally = tallyOps(bytes);
      if (tally === undefined) return;
      let decoded: JournalPayload;
      try {
        decoded = decodeCbor<JournalPayload>(bytes);
      } catch (error) {
        throw new Error(`tallied bytes cbor-x refuses (${String(error)}): ${bytes.toString('hex')}`);
      }
      expect(tally).toStrictEqual(fromDecoded(decoded));
    }), { numRuns: 3000 });
  });

  it('scrub counts the same totals through it: clean, and an index that silently lost a message still disagrees with the journal', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    try {
      await store.createMailbox('INBOX');
      await store.appendBatch('INBOX', Array.from({ length: 20 }, (_, i) => ({ bytes: Buffer.from(`Subject: ${i}\r\n\r\n${i}\r\n`) })));
      await store.expunge('INBOX', [1, 2]);
      expect((await scrub(store, { hashThreads: 0 })).findings.filter(isDamage)).toStrictEqual([]);
      // the mailbox's I entry gone, as a damaged table LevelDB reads as empty: the journal holds one more
      const db = internalsOf(store).db;
      const info: Buffer[] = [];
      for await (const [key] of db.rawIterator({ gte: Buffer.of(SPACE.info), lt: Buffer.of(SPACE.info + 1) })) info.push(Buffer.from(key));
      await db.write(info.map((key) => ({ type: 'del' as const, key })));
      const mismatch = (await scrub(store, { hashThreads: 0 })).findings.find((f) => f.kind === 'index-journal-mismatch');
      expect(mismatch).toMatchObject({ detail: 'the journal holds 1 mailboxes and 18 messages, the index 0 and 0' });
    } finally {
      await store.close();
    }
  });
});
