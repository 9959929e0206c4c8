// What `mailstore copy` and `mailstore move` share: IMAP COPY and MOVE (RFC 9051, RFC 6851) over
// Store.copy and Store.move, with the COPYUID answer. Each command keeps its own file and help.
import type { Command } from 'commander';
import { formatUidSet } from '../../formats/uidset.js';
import { printJson, printLine, wantsJson, withStore } from '../context.js';
import { inUidRuns, resolveUidSet } from '../uids.js';
import type { MailStore } from '../../store/api.js';

export function registerTransfer(program: Command, verb: 'copy' | 'move', description: string): void {
  program
    .command(`${verb} <from> <uids> <to>`)
    .description(description)
    .option('--json', 'print {from, to, uidValidity, mapping: [[fromUid, toUid], ...]} (COPYUID)')
    .action(async (from: string, uidText: string, to: string, _options: unknown, command: Command) => {
      const result = await withStore(command, (store) => transferUidSet(store, verb, from, uidText, to));
      if (wantsJson(command)) return printJson({ from, to, ...result });
      const n = result.mapping.length;
      const detail = n ? ` (COPYUID ${result.uidValidity} ${formatUidSet(result.mapping.map(([s]) => s))} ${formatUidSet(result.mapping.map(([, d]) => d))})` : '';
      await printLine(`${verb === 'copy' ? 'copied' : 'moved'} ${n} message${n === 1 ? '' : 's'} from ${from} to ${to}${detail}`);
    });
}

/** The UID set of FROM copied or moved to TO (a move in runs), each call only from the mailbox the set was read from. */
export async function transferUidSet(store: MailStore, verb: 'copy' | 'move', from: string, uidText: string, to: string): Promise<{ uidValidity: number; mapping: [number, number][] }> {
  // the runs go only from the mailbox the set was read from: renamed away meanwhile and a new one
  // made under the name, they took that one's messages at those uids
  const { id: mailboxId } = await store.mailbox(from);
  const uids = await resolveUidSet(store, from, uidText);
  const { uidValidity } = await store.status(to); // NOT_FOUND for the target even when the set is empty
  if (uids.length === 0) return { uidValidity, mapping: [] };
  // COPY is all or nothing (RFC 9051): one call. A MOVE may go in runs, each a record of its
  // own (RFC 6851 sends a COPYUID a run): a crash leaves each message in exactly one place.
  if (verb === 'copy') return store.copy(from, uids, to, { mailboxId });
  const runs = await inUidRuns(uids, (run) => store.move(from, run, to, { mailboxId }));
  return { uidValidity: runs.at(-1)!.uidValidity, mapping: runs.flatMap((r) => r.mapping) };
}
