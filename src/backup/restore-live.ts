// `mailstore restore --user/--mailbox` into a live store: the selected mailboxes as new mailboxes,
// filled by ordinary appends through a small interface (the Store, or later the daemon's client).
import { MailstoreError } from '../errors.js';
import { backupLimits } from '../limits.js';
import type { AppendOptions } from '../store/types.js';
import { formatMailboxName, ownerKept } from '../store/validate.js';
import { lockRepository, type Repository } from './repository.js';
import { indexRepairNotes, readBlob, selectState, type RestoreOptions, type RestoreSummary, type RestoreTarget } from './select.js';

/**
 * The selected mailboxes as new mailboxes of a live store: refused (EXISTS, before anything is
 * written) when a name is taken. New uids; flags, dates and the optional metadata are kept.
 */
export async function restoreIntoStore(target: RestoreTarget, targetPath: string, repo: Repository, snapshotRef: string, options: RestoreOptions = {}): Promise<RestoreSummary> {
  const started = performance.now();
  const readBefore = repo.dataBytesRead;
  const selection = options.selection ?? {};
  if (selection.user === undefined && selection.mailbox === undefined) {
    throw new MailstoreError('EXISTS', `${targetPath} already holds a store: restore a whole store into a new directory, or give --mailbox or --user (with --as for a new name)`, { path: targetPath });
  }
  const lock = await lockRepository(repo, false, { readOnly: true });
  try {
    const { id, snapshot } = await repo.findSnapshot(snapshotRef);
    const selected = selectState(snapshot, selection);
    for (const box of selected.mailboxes) {
      const name = formatMailboxName(box.name);
      if (await target.hasMailbox(name)) throw new MailstoreError('EXISTS', `${targetPath} already has a mailbox ${name}: restore it under another name with --as NAME`, { path: name });
    }
    const index = await repo.loadIndex();
    let messages = 0;
    let bytes = 0;
    for (const box of selected.mailboxes) {
      const name = formatMailboxName(box.name);
      // an owner "anyone" or "-x" (taken before it was refused) is no owner: its rights are in the ACL as they were
      const owner = ownerKept(box.owner);
      await target.createMailbox(name, owner !== undefined ? { owner, acl: box.acl } : { acl: box.acl });
      const list = selected.messages.get(Buffer.from(box.id).toString('hex')) ?? [];
      let items: (AppendOptions & { bytes: Uint8Array })[] = [];
      let batchBytes = 0;
      const send = async () => {
        if (items.length === 0) return;
        await target.appendBatch(name, items);
        messages += items.length;
        items = [];
        batchBytes = 0;
        options.onProgress?.(messages, bytes);
      };
      // batches bounded by count and bytes: through a daemon each is one call on its socket
      for (const [uid, hash, size, date, flags, , extras] of list) {
        const item: AppendOptions & { bytes: Uint8Array } = { bytes: await readBlob(repo, index, Buffer.from(hash), `${name} uid ${uid}`, size), flags, internalDate: date };
        if (extras?.e !== undefined) item.envelopeFrom = extras.e;
        if (extras?.z !== undefined) item.dateZoneMinutes = extras.z;
        if (extras?.n) item.recent = true;
        items.push(item);
        bytes += size;
        batchBytes += size;
        if (items.length >= backupLimits.restoreAppendMessages || batchBytes >= backupLimits.restoreAppendBytes) await send();
      }
      await send();
    }
    return {
      snapshot: id, storeId: snapshot.storeId, seq: snapshot.seq, to: targetPath, mailboxes: selected.mailboxes.length, messages, bytes,
      bytesRead: repo.dataBytesRead - readBefore, durationMs: Math.round(performance.now() - started), ...indexRepairNotes(index),
    };
  } finally {
    await lock.release();
  }
}
