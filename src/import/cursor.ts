// The resume cursor of an import: stored by appendBatch in the same journal record as the batch it
// describes, so after a crash or Ctrl-C it says exactly which source messages are already in.
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';

export const CURSOR_VERSION = 1;

export interface ImportCursor {
  version: typeof CURSOR_VERSION;
  /** Absolute path of the source folder, and the mailbox it goes to (for people reading it). */
  source: string;
  mailbox: string;
  /** The mailbox the cursor belongs to: a deleted and re-created mailbox starts over. */
  mailboxId: string;
  uidValidity: number;
  /** Source positions below this are imported, except those listed in `retry`. */
  done: number;
  /**
   * Entries below `done` that could not be read (unreadable, a link, too large): the next run
   * tries each again, if the same entry (SourceMessage.entry) is still at its position.
   */
  retry?: { position: number; entry: string }[];
  /** Position and BLAKE3 (hex) of the last message imported, checked on resume. */
  lastPosition: number;
  lastHash: string;
  /** Messages imported into the mailbox from this source so far. */
  imported: number;
}

// Every cursor's meta key starts so: defined beside the store's delete, which removes them, as
// an `append` must not load this module (test/cli/start-up.test.ts)
import { CURSOR_KEY_PREFIX } from '../store/delete-chunks.js';
export { CURSOR_KEY_PREFIX };

/** The meta key of the cursor for one source folder into one mailbox. */
export function cursorKey(sourcePath: string, mailbox: string): string {
  const digest = createHash('sha256').update(resolve(sourcePath)).update('\0').update(mailbox).digest('hex');
  return `${CURSOR_KEY_PREFIX}${digest.slice(0, 32)}`;
}

export function isImportCursor(value: unknown): value is ImportCursor {
  const c = value as ImportCursor | undefined;
  return !!c && c.version === CURSOR_VERSION && typeof c.done === 'number' && typeof c.lastHash === 'string' && typeof c.mailboxId === 'string' &&
    (c.retry === undefined || (Array.isArray(c.retry) && c.retry.every((r) => typeof r?.position === 'number' && typeof r.entry === 'string')));
}
