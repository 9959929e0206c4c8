// `mailstore restore --user/--mailbox` into a live store: the selected mailboxes as new mailboxes,
// filled by ordinary appends through a small interface (the Store, or later the daemon's client).
import { MailstoreError } from '../errors.js';
import { backupLimits } from '../limits.js';
import type { AppendOptions } from '../store/types.js';
import type { QuotaLimits } from '../store/quota.js';
import { formatMailboxName, isAtOrBelow, ownerKept, parseMailboxName } from '../store/validate.js';
import { lockRepository, type Repository, type SnapshotFile } from './repository.js';
import { QUOTA_PREFIX, indexRepairNotes, readBlobOrLeaveOut, restoredTree, selectState, type LeftOutMessage, type RestoreOptions, type RestoreSelection, type RestoreSummary, type RestoreTarget, type Selected } from './select.js';
import { monotonicMs } from '../monotonic.js';

/**
 * The selected mailboxes as new mailboxes of a live store: refused (EXISTS, before anything is
 * written) when a name is taken. New uids; flags, dates and the optional metadata are kept.
 */
export async function restoreIntoStore(target: RestoreTarget, targetPath: string, repo: Repository, snapshotRef: string, options: RestoreOptions = {}): Promise<RestoreSummary> {
  const started = monotonicMs();
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
    const snapshotNames = snapshotMailboxNames(snapshot);
    let messages = 0;
    let bytes = 0;
    const made: string[] = [];
    const leftOut: LeftOutMessage[] = [];
    try {
      for (const box of selected.mailboxes) {
        const name = formatMailboxName(box.name);
        // an owner "anyone" or "-x" (taken before it was refused) is no owner: its rights are in the ACL as they were
        const owner = ownerKept(box.owner);
        const { id: mailboxId } = await target.createMailbox(name, owner !== undefined ? { owner, acl: box.acl } : { acl: box.acl });
        made.push(name);
        const list = selected.messages.get(Buffer.from(box.id).toString('hex')) ?? [];
        let items: (AppendOptions & { bytes: Uint8Array })[] = [];
        let batchBytes = 0;
        const send = async () => {
          if (items.length === 0) return;
          // pinned to the mailbox made above: renamed away (and the name made again) meanwhile, the
          // rest went into the new one, and the summary counted it all as restored into NAME
          await target.appendBatch(name, items, { mailboxId });
          messages += items.length;
          items = [];
          batchBytes = 0;
          options.onProgress?.(messages, bytes);
        };
        // batches bounded by count and bytes: through a daemon each is one call on its socket
        const from = snapshotNames.get(Buffer.from(box.id).toString('hex'));
        for (const [uid, hash, size, date, flags, , extras] of list) {
          let body: Buffer | undefined;
          try {
            const mailbox = from ?? name;
            body = await readBlobOrLeaveOut(repo, index, Buffer.from(hash), { mailbox, uid, what: from === name ? `${name} uid ${uid}` : `${from} uid ${uid} (restoring as ${name})`, sizeBytes: size }, options.leaveOutDamaged ? leftOut : undefined);
          } catch (error) {
            await send(); // the messages before it go in, as the docs say, not only the batches already sent
            throw error;
          }
          if (!body) continue; // left out (leaveOutDamaged): listed in the summary
          const item: AppendOptions & { bytes: Uint8Array } = { bytes: body, flags, internalDate: date };
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
    } catch (error) {
      throw stoppedPartWay(error, made, messages);
    }
    await restoreOwnQuotaRoots(target, selected, selection);
    return {
      snapshot: id, storeId: snapshot.storeId, seq: snapshot.seq, to: targetPath, mailboxes: selected.mailboxes.length, messages, bytes,
      bytesRead: repo.dataBytesRead - readBefore, durationMs: Math.round(monotonicMs() - started), ...indexRepairNotes(index, leftOut),
    };
  } finally {
    await lock.release();
  }
}

/**
 * A restore that stopped once it had made mailboxes (a damaged message, the daemon stopped, a full
 * disk) left them, filled up to where it stopped, and a second run is refused EXISTS on them: the
 * error says so, with its own code, so the admin is not left guessing what is in the store.
 */
function stoppedPartWay(error: unknown, made: string[], messages: number): unknown {
  if (made.length === 0 || !(error instanceof MailstoreError)) return error;
  // the mailbox being filled renamed away (its batches are pinned to it) or deleted: not where its name says
  const gone = error.code === 'NOT_FOUND' ? ` (${made.length === 1 ? 'renamed' : `${made.at(-1)} renamed`} or deleted since: under its new name if renamed)` : '';
  const which = made.length === 1 ? `${made[0]}${gone} holds` : `${made.length} new mailboxes (${made[0]} … ${made.at(-1)})${gone} hold`;
  const count = error.mayHaveCommitted ? `at least ${messages}` : `${messages}`; // a batch whose answer was lost may be in too
  return new MailstoreError(error.code, `${error.message}; the restore stopped there: ${which} the ${count} messages restored before it (delete ${made.length === 1 ? 'it' : 'them'}, or give another --as, to restore again)`, { path: error.path, cause: error, mayHaveCommitted: error.mayHaveCommitted });
}

/** Mailbox id (hex) -> its name in the snapshot: a damaged message is named as check names it, not by its --as name and a uid it never had there. */
function snapshotMailboxNames(snapshot: SnapshotFile): Map<string, string> {
  const names = new Map<string, string>();
  for (const op of snapshot.ops) if (op.op === 'state.mailbox') names.set(Buffer.from(op.info.id).toString('hex'), formatMailboxName(op.info.name));
  return names;
}

/**
 * The part's own quota roots (at or below user/AS, or the mailbox's new name), as a restore into a
 * new store takes them: a user deleted by mistake (a delete frees its roots) came back with no
 * limits. Set once its mail is in, as it had them then; a root the live store has now, and the
 * roots above the part (the live store's own), are left as they are.
 */
async function restoreOwnQuotaRoots(target: RestoreTarget, selected: Selected, selection: RestoreSelection): Promise<void> {
  const tree = restoredTree(selection)!;
  for (const [key, limits] of selected.meta) {
    if (!key.startsWith(QUOTA_PREFIX) || !isAtOrBelow(parseMailboxName(key.slice(QUOTA_PREFIX.length)), tree)) continue;
    const root = key.slice(QUOTA_PREFIX.length);
    const now = await target.getQuota(root);
    if (now.storage === undefined && now.messages === undefined) await target.setQuota(root, limits as QuotaLimits);
  }
}
