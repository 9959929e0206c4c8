// Every blob a backup run copies has one shape (src/backup/needed-blob.ts): the same fields in the
// same order, `length` present without a place too, so the copy's code sees one hidden class.
import { describe, expect, it } from 'vitest';
import { neededBlob } from '../../src/backup/needed-blob.js';

describe('neededBlob', () => {
  it('has the same keys in the same order with a place and without one', () => {
    const hash = Buffer.alloc(32, 1);
    const placed = neededBlob(hash, hash.toString('hex'), 10, 'INBOX', 1, 2 ** 32 + 96, 10);
    const unplaced = neededBlob(hash, hash.toString('hex'), 10, 'INBOX', 1, 0, undefined);
    const order = ['hash', 'key', 'size', 'mailbox', 'uid', 'position', 'length'];
    expect(Object.keys(placed)).toEqual(order);
    expect(Object.keys(unplaced)).toEqual(order);
    expect(unplaced.length).toBeUndefined(); // fetchBatch reads only blobs with a length at their place
    expect(placed).toMatchObject({ size: 10, mailbox: 'INBOX', uid: 1, position: 2 ** 32 + 96, length: 10 });
  });
});
