// `mailstore move FROM UIDSET TO`: IMAP MOVE (RFC 9051, RFC 6851) over the library's Store.move.
import type { Command } from 'commander';
import { formatUidSet } from '../../formats/uidset.js';
import { printJson, printLine, wantsJson, withStore } from '../context.js';
import { resolveUidSet } from '../uids.js';

export function register(program: Command): void {
  program
    .command('move <from> <uids> <to>')
    .description("move the messages of a UID set from FROM to TO: the copy and the expunge are one journal record, so a crash leaves them in exactly one place. Durable when it returns; OVER_QUOTA when TO's quota root (another than FROM's) would go over")
    .option('--json', 'print {from, to, uidValidity, mapping: [[fromUid, toUid], ...]} (COPYUID)')
    .action(async (from: string, uidText: string, to: string, _options: unknown, command: Command) => {
      const result = await withStore(command, async (store) => {
        const uids = await resolveUidSet(store, from, uidText);
        const { uidValidity } = await store.status(to); // NOT_FOUND for the target even when the set is empty
        if (uids.length === 0) return { uidValidity, mapping: [] as [number, number][] };
        return store.move(from, uids, to);
      });
      if (wantsJson(command)) return printJson({ from, to, ...result });
      const n = result.mapping.length;
      const detail = n ? ` (COPYUID ${result.uidValidity} ${formatUidSet(result.mapping.map(([s]) => s))} ${formatUidSet(result.mapping.map(([, d]) => d))})` : '';
      await printLine(`moved ${n} message${n === 1 ? '' : 's'} from ${from} to ${to}${detail}`);
    });
}
