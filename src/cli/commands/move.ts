// `mailstore move FROM UIDSET TO`: IMAP MOVE over the library's Store.move.
import type { Command } from 'commander';
import { limits } from '../../limits.js';
import { registerTransfer } from './transfer.js';

export function register(program: Command): void {
  registerTransfer(program, 'move', `move the messages of a UID set from FROM to TO, in runs of at most ${limits.uidSetChunkMessages}, each committed in parts of at most ${limits.uidChangePartMessages}: a part's copy and expunge are one journal record, so a crash leaves each message in exactly one place. Durable when it returns; OVER_QUOTA when TO's quota root (another than FROM's) would go over`);
}
