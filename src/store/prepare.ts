// What the prepare step of a Mutation (writer.ts) needs in both the Store's changes and the
// maintenance hooks: a mailbox looked up inside the batch, and the bound on one journal record.
import { MailstoreError } from '../errors.js';
import { encodeCbor } from '../index/codec.js';
import { keys } from '../keys/index-keys.js';
import { limits } from '../limits.js';
import type { MailboxInfo, Op } from './records.js';
import type { PrepareContext } from './writer.js';

/** Resolves a name inside a batch (sees the batch's own pending changes). */
export async function resolveInBatch(view: PrepareContext['view'], components: string[], name: string): Promise<MailboxInfo> {
  const id = await view.get<Buffer>(keys.name(components));
  const box = id ? await view.get<MailboxInfo>(keys.info(Buffer.from(id))) : undefined;
  if (!box || box.deleting) throw new MailstoreError('NOT_FOUND', `no mailbox named ${name}`, { path: name });
  return { ...box, id: Buffer.from(box.id) };
}

/**
 * One call is one journal record, and open reads a record above limits.journalRecordBytesMax as
 * damage: a call that would write one (a copy of 100,000 messages, many long keywords) is refused
 * before anything is written, and the caller splits it.
 */
export function checkRecordSize(ops: Op[], doing: string, inlineBytes = 0): void {
  // inline bodies (given apart: encoding them only to count them would copy every body) add
  // their length and at most 16 bytes each (the `body` key and a byte string header)
  const bytes = encodeCbor({ ops, end: true }).length + inlineBytes;
  if (bytes > limits.journalRecordBytesMax) {
    throw new MailstoreError('INVALID', `${doing} would make one journal record of ${bytes} bytes (at most ${limits.journalRecordBytesMax}); split it into smaller calls`);
  }
}
