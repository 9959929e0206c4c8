// Retention (doveadm expunge savedbefore, cyr_expire): expunge the messages of a mailbox, or of a
// tree, whose internal date is before a cutoff (append sets it to the arrival time unless given).
// Each mailbox's expunges are journaled in bounded records; a crash keeps a prefix of them, and
// running it again finishes the job, since the selection is the same. It refuses to run under a
// clock the store cannot trust (clock.ts).
import { MailstoreError, isMailstoreError } from '../errors.js';
import { limits } from '../limits.js';
import type { MailStore } from './api.js';
import { SEEN } from './apply.js';
import { judgedHere, untrustedClockError } from './clock-report.js';
import { parseMailboxName } from './validate.js';

export interface RetentionOptions {
  before: Date;
  /** Only messages with \Seen. */
  seen?: boolean;
  /** Count only; nothing is changed. */
  dryRun?: boolean;
  /** The mailbox and every mailbox below it. */
  recursive?: boolean;
}

export interface RetentionResult {
  mailbox: string;
  uids: number[];
  bytes: number;
}

export async function expungeBefore(store: MailStore, mailbox: string, options: RetentionOptions): Promise<RetentionResult[]> {
  parseMailboxName(mailbox);
  const names: string[] = [];
  // recursive over "user" works when user/ is only a prefix, not a mailbox (as in most trees)
  const exists = await store.status(mailbox).then(() => true, (error: unknown) => {
    if (options.recursive && isMailstoreError(error, 'NOT_FOUND')) return false;
    throw error;
  });
  if (exists) names.push(mailbox);
  if (options.recursive) for (const entry of await store.listMailboxes({ pattern: `${mailbox}/*` })) names.push(entry.name);
  if (names.length === 0) throw new MailstoreError('NOT_FOUND', `no mailbox named ${mailbox} nor any below it`, { path: mailbox });
  // a cutoff counted from a wrong clock, or dates a wrong clock gave, would expunge recent mail for good
  const clock = judgedHere(await store.clockReport());
  if (clock.untrusted !== undefined) throw untrustedClockError(clock, mailbox);
  const cutoff = options.before.getTime();
  const out: RetentionResult[] = [];
  for (const name of names) {
    // --seen chooses by flags, which may change before the expunge: only messages unchanged since
    // this listing began go (one marked unread meanwhile stays; the next run sees it as it is)
    // and only in the mailbox listed: renamed away meanwhile (a yearly archive rotation) and a new one
    // made under the name, its uids were expunged in that one, new mail gone for good
    const { id: mailboxId } = await store.mailbox(name);
    const expungeOptions = options.seen ? { unchangedSince: (await store.status(name)).highestModseq, mailboxId } : { mailboxId };
    const sizes = new Map<number, number>();
    for await (const info of store.messages(name)) {
      if (info.internalDate.getTime() >= cutoff) continue;
      if (options.seen && !info.flags.includes(SEEN)) continue;
      sizes.set(info.uid, info.size);
    }
    let uids = [...sizes.keys()];
    if (!options.dryRun) {
      const expunged: number[] = [];
      for (let at = 0; at < uids.length; at += limits.retentionChunkMessages) {
        expunged.push(...(await store.expunge(name, uids.slice(at, at + limits.retentionChunkMessages), expungeOptions)).expunged);
      }
      uids = expunged;
    }
    out.push({ mailbox: name, uids, bytes: uids.reduce((sum, uid) => sum + sizes.get(uid)!, 0) });
  }
  return out;
}
