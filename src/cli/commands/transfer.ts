// What `mailstore copy` and `mailstore move` share: IMAP COPY and MOVE (RFC 9051, RFC 6851) over
// Store.copy and Store.move, with the COPYUID answer. Each command keeps its own file and help.
import type { Command } from 'commander';
import { formatUidSet } from '../../formats/uidset.js';
import { printJson, printLine, wantsJson, withStore } from '../context.js';
import { resolveUidSet } from '../uids.js';

export function registerTransfer(program: Command, verb: 'copy' | 'move', description: string): void {
  program
    .command(`${verb} <from> <uids> <to>`)
    .description(description)
    .option('--json', 'print {from, to, uidValidity, mapping: [[fromUid, toUid], ...]} (COPYUID)')
    .action(async (from: string, uidText: string, to: string, _options: unknown, command: Command) => {
      const result = await withStore(command, async (store) => {
        const uids = await resolveUidSet(store, from, uidText);
        const { uidValidity } = await store.status(to); // NOT_FOUND for the target even when the set is empty
        if (uids.length === 0) return { uidValidity, mapping: [] as [number, number][] };
        return verb === 'copy' ? store.copy(from, uids, to) : store.move(from, uids, to);
      });
      if (wantsJson(command)) return printJson({ from, to, ...result });
      const n = result.mapping.length;
      const detail = n ? ` (COPYUID ${result.uidValidity} ${formatUidSet(result.mapping.map(([s]) => s))} ${formatUidSet(result.mapping.map(([, d]) => d))})` : '';
      await printLine(`${verb === 'copy' ? 'copied' : 'moved'} ${n} message${n === 1 ? '' : 's'} from ${from} to ${to}${detail}`);
    });
}
