// `mailstore copy FROM UIDSET TO`: IMAP COPY over the library's Store.copy.
import type { Command } from 'commander';
import { registerTransfer } from './transfer.js';

export function register(program: Command): void {
  registerTransfer(program, 'copy', "copy the messages of a UID set (e.g. 1:5,9) from FROM to TO; no bytes are copied, only references. Durable (journaled) when it returns; OVER_QUOTA when TO's quota root would go over");
}
