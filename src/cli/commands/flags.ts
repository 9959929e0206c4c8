// `mailstore flags MAILBOX UIDS --add/--remove/--set`: change flags of a UID set, in records of a bounded number of messages.
import type { Command } from 'commander';
import { MailstoreError } from '../../errors.js';
import { limits } from '../../limits.js';
import { formatUidSet } from '../../formats/uidset.js';
import { normalizeFlags } from '../../store/validate.js';
import { parseFlagList, printJson, printLine, wantsJson, withStore } from '../context.js';
import { parseCount } from '../dates.js';
import { inUidRuns, resolveUidSet } from '../uids.js';
import type { MailStore } from '../../store/api.js';
import type { FlagChange } from '../../store/types.js';

interface FlagsOptions { add?: string; remove?: string; set?: string; unchangedSince?: string }

export function register(program: Command): void {
  program
    .command('flags <mailbox> <uids>')
    .description(`add, remove or set the flags of the messages in a UID set (e.g. 1:5,9,12:*); durable (journaled, one modseq per ${limits.uidChangePartMessages} messages) when it returns`)
    .option('--add <flags>', 'flags to add, comma or space separated')
    .option('--remove <flags>', 'flags to remove')
    .option('--set <flags>', 'replace all flags with these ("" clears them)')
    .option('--unchanged-since <modseq>', 'CONDSTORE: leave messages modified after this modseq alone (reported as modified)')
    .option('--json', 'print {updated, modified, modseq} as JSON')
    .action(async (mailbox: string, uidText: string, options: FlagsOptions, command: Command) => {
      if (options.set !== undefined && (options.add !== undefined || options.remove !== undefined)) {
        throw new MailstoreError('INVALID', 'use either --set or --add/--remove, not both');
      }
      if (options.set === undefined && options.add === undefined && options.remove === undefined) {
        throw new MailstoreError('INVALID', 'say what to change: --add, --remove or --set');
      }
      const change = {
        add: options.add === undefined ? undefined : normalizeFlags(parseFlagList(options.add)),
        remove: options.remove === undefined ? undefined : normalizeFlags(parseFlagList(options.remove)),
        replace: options.set === undefined ? undefined : normalizeFlags(parseFlagList(options.set)),
      };
      const unchangedSince = options.unchangedSince === undefined ? undefined : parseCount(options.unchangedSince, '--unchanged-since');
      const result = await withStore(command, (store) => setFlagsOnUidSet(store, mailbox, uidText, { ...change, unchangedSince }));
      if (wantsJson(command)) return printJson({ mailbox, ...result });
      await printLine(`updated ${result.updated.length} message${result.updated.length === 1 ? '' : 's'}` +
        (result.updated.length ? ` (${formatUidSet(result.updated)})` : '') +
        (result.modified.length ? `; not changed, modified since: ${formatUidSet(result.modified)}` : '') + `; modseq ${result.modseq}`);
    });
}

/** The flags of a UID set changed in runs, each only in the mailbox the set was read from (renamed away and one made under the name meanwhile: NOT_FOUND). */
export async function setFlagsOnUidSet(store: MailStore, mailbox: string, uidText: string, change: FlagChange): Promise<{ updated: number[]; modified: number[]; modseq: number }> {
  const { id: mailboxId } = await store.mailbox(mailbox);
  const uids = await resolveUidSet(store, mailbox, uidText);
  if (uids.length === 0) return { updated: [], modified: [], modseq: (await store.status(mailbox)).highestModseq };
  const runs = await inUidRuns(uids, (run) => store.setFlags(mailbox, run, { ...change, mailboxId }));
  return { updated: runs.flatMap((r) => r.updated), modified: runs.flatMap((r) => r.modified), modseq: runs.at(-1)!.modseq };
}
