// `mailstore xfer --user NAME --to ADDRESS`: moves a user's mailboxes to another store (its
// --replication-listen) keeping uidValidity, uids, modseqs, flags, dates and ACLs (src/replication/xfer.ts).
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { procedures } from '../../daemon/procedures.js';
import { absolutePath, printJson, printLine, wantsJson, warn, withStore } from '../context.js';

export function register(program: Command): void {
  program
    .command('xfer')
    .description('move a user\'s mailboxes to another store while the user keeps working (copy, catch up, short write fence, switch, remove here)')
    .requiredOption('--user <name>', 'the user whose mailboxes (user/NAME and below) move')
    .requiredOption('--to <address>', 'the other store\'s --replication-listen address (HOST:PORT)')
    .option('--mailbox <prefix>', 'only the mailboxes whose name starts with this')
    .option('--replication-key <file>', 'the replication key file (default: the one this store\'s REPLICATION names)')
    .option('--json', 'print as JSON')
    .addHelpText('after', `
uidValidity, uids, modseqs, flags, internal dates, ACLs and the owner are kept, and a whole user's
quota roots (user/NAME, user/NAME/...; not with --mailbox) move with it (a target of an older
mailstore does not take them: they stay here, with a warning): the target first
raises its own modseqs past the user's highest, so no later change there gets a lower one and a
CONDSTORE client sees nothing changed (a flag change caught up under the fence gets the target's
next modseq). An interrupted xfer is finished by running the same command again (after the
switch, with the same --to) or was rolled back (before it). Run again after the switch, it
refuses (REFUSED, exit 3, nothing removed) with another --to, or when a mailbox here changed since
the switch (mail delivered here meanwhile is not at the target): move that to the target, delete
the mailbox here, and run it again.`)
    .action(async (options: { user: string; to: string; mailbox?: string; replicationKey?: string }, command: Command) => {
      const result = await withStore(command, (store) => procedures(store).xfer({ user: options.user, to: options.to, mailboxPrefix: options.mailbox, keyFile: options.replicationKey && absolutePath(options.replicationKey) }));
      if (result.quotaRootsKept) warn(`the quota roots ${result.quotaRootsKept.join(', ')} stay here: ${options.to} (an older mailstore) did not take them; set them there with 'mailstore quota set'`);
      if (wantsJson(command)) return printJson(result);
      await printLine(`moved ${result.mailboxes.length} mailbox(es) of ${options.user} to ${options.to}${result.resumedAfterSwitch ? ' (finished an interrupted xfer)' : `, ${result.messages} messages`}`);
    });
}
