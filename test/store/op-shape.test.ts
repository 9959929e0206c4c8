// The shapes of journal ops another node sends (src/store/op-shape.ts): every form of op some
// mailstore version wrote passes, since a primary's journal may hold records of any of them; a
// field of the wrong type, or an op of no known kind, is named.
import { describe, expect, it } from 'vitest';
import { payloadShapeProblem } from '../../src/store/op-shape.js';

const id = Buffer.alloc(16, 1);
const hash = Buffer.alloc(32, 2);
const info = { id, name: ['INBOX'], pastNames: [], uidValidity: 7, uidNext: 1, highestModseq: 3, messages: 0, unseen: 0, bytes: 0, acl: {}, created: 1 };

describe('payloadShapeProblem', () => {
  it('passes the forms of ops older versions wrote: a relocation without size (the first version), a digest read as u32s', () => {
    for (const op of [
      { op: 'blob.relocate', hash, pack: 0, offset: 48 },
      { op: 'state.mailbox', info: { ...info, digest: [-5, 0, 2 ** 32 - 1, 1] } },
      { op: 'message.add', id, uid: 1, hash, size: 3, date: Number.NaN, flags: [], pack: -1, offset: 9, body: Buffer.from('abc') }, // a date no version checked
      { op: 'message.expunge', id, uids: [1], purge: undefined, at: undefined },
    ]) expect(payloadShapeProblem({ ops: [op], end: true }), op.op).toBeUndefined();
  });

  it('names the op of the wrong shape or of no known kind', () => {
    expect(payloadShapeProblem({ ops: [{ op: 'mailbox.rename', id, to: [] }] })).toMatch(/op 0 \(mailbox.rename\)/);
    expect(payloadShapeProblem({ ops: [{ op: 'state.mailbox', info }, { op: 'state.mailbox', info: { ...info, messages: -1 } }] })).toMatch(/op 1/);
    expect(payloadShapeProblem({ ops: [{ op: 'mailbox.explode' }] })).toMatch(/does not know/);
    expect(payloadShapeProblem({ ops: {} })).toMatch(/not a journal payload/);
  });
});
