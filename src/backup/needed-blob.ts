// A blob a backup run copies, as every part of the run (the state's reads, the journal since the
// parent, the tip's columns) hands it to the copy.

export interface NeededBlob {
  hash: Buffer;
  /** The hash in hex (computed once: a run looks every blob up by it). */
  key: string;
  size: number;
  /** The first message using it (its mailbox's name and uid): an error names it. */
  mailbox: string;
  uid: number;
  /** Where the store keeps it (pack, offset): blobs are read in that order. */
  position: number;
  /** Its record's body length in the pack, when the state gave its location (fetchBlobsAt reads it there). */
  length?: number;
}

/**
 * A NeededBlob, its fields always in this order and `length` always present (undefined without a
 * place): one shape for every blob of a run, so the copy's code, which every blob passes through,
 * sees one and V8 does not throw its optimised code away at each new one (a full backup's `add`
 * was compiled four times).
 */
export function neededBlob(hash: Buffer, key: string, size: number, mailbox: string, uid: number, position: number, length: number | undefined): NeededBlob {
  return { hash, key, size, mailbox, uid, position, length };
}
