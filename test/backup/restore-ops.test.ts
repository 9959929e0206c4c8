// The journal a whole-store restore writes for a big store: one state.changes op per mailbox
// with a change log (every mailbox that holds mail), so ~120k of them and more on a large server.
import { describe, expect, it } from 'vitest';
import { stateOps } from '../../src/backup/restore.js';
import type { Selected } from '../../src/backup/select.js';

describe('restore state ops', () => {
  it('carries 200k mailboxes\' change logs into the restored journal, not a RangeError', () => {
    const changes: Selected['changes'] = Array.from({ length: 200_000 }, (_, i) => {
      const id = Buffer.alloc(16);
      id.writeUInt32BE(i + 1, 12);
      return { op: 'state.changes', id, entries: [[2, 1, 0]] };
    });
    const ops = [...stateOps(7, { meta: [], mailboxes: [], messages: new Map(), changes }, new Map())];
    expect(ops[0]).toEqual({ op: 'state.begin', appliedSeq: 7 });
    expect(ops.filter((op) => op.op === 'state.changes')).toHaveLength(200_000);
  });
});
