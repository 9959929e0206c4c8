// A delivery to a mailbox that does not exist: for good (bounce), or for now (retry)?
//
// An admin's archive rotation renames user/alice/INBOX away and makes it again a moment later
// (`mailbox rename user/alice/INBOX user/alice/Archive/2026`, then `mailbox create`). A delivery in
// between was refused for good, LMTP 550 5.1.1 and `append --sysexits` 67, so the MTA bounced mail
// whose user is right there (session 50; wt49d's race run). A mailbox whose parent still holds
// mailboxes is missing for now: LMTP answers 450 4.2.1, `append --sysexits` 75, and the MTA
// delivers at its next try. A user with nothing left (never made, `user delete`) is still refused
// for good. Dovecot never gets here (its LMTP creates INBOX), Cyrus's RENAME INBOX keeps one.
import type { MailStore } from './api.js';
import { isMailstoreError } from '../errors.js';
import { printable } from '../printable.js';

/**
 * The parent of MAILBOX (`user/alice` of `user/alice/INBOX`) when it still holds a mailbox, else
 * undefined (a top-level name, none left, a parent with a list wildcard in it: a local part may
 * hold `*` or `%`, which a pattern would read as wildcards). One prefix read of the parent's names.
 * A failed read throws: unknown is neither answer, and taken as "none left" it bounced mail for good.
 */
export async function parentStillThere(store: Pick<MailStore, 'listMailboxes'>, mailbox: string): Promise<string | undefined> {
  const parent = mailbox.slice(0, Math.max(0, mailbox.lastIndexOf('/')));
  if (parent === '' || /[*%]/.test(parent)) return undefined;
  const under = await store.listMailboxes({ pattern: `${parent}/*` });
  return under.length > 0 ? parent : undefined;
}

/**
 * For `append --sysexits` after a NOT_FOUND: why the MTA should try again (exit 75), or undefined
 * when the mailbox is gone for good (67). A look that fails is a reason to retry, not to bounce.
 */
export async function retryAfterMissing(store: Pick<MailStore, 'listMailboxes'>, mailbox: string): Promise<string | undefined> {
  try {
    const parent = await parentStillThere(store, mailbox);
    return parent === undefined ? undefined : `${mailbox} does not exist now, but ${parent} holds mailboxes (renamed away and being made again?): retry later`;
  } catch (error) {
    const why = `${isMailstoreError(error) ? error.code : 'INTERNAL'}: ${error instanceof Error ? error.message : String(error)}`;
    return printable(`whether ${mailbox}'s user has other mailboxes could not be read (${why}): retry later`);
  }
}
