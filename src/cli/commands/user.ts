// `mailstore user rename|delete|moved|forget-moved`: a user is the tree user/NAME/... plus every ACL entry naming NAME
// (Cyrus's user rename and delete). Both are journaled before they return.
import type { Command } from 'commander';
import type { MailStore } from '../../store/api.js';
import type { DeleteUserResult } from '../../store/users.js';
import { printJson, printLine, wantsJson, withReadStore, withStore } from '../context.js';
import { lmtpCaseWarnings, reportWithWarnings } from '../lmtp-case.js';

export function register(program: Command): void {
  const user = program.command('user').description('rename or delete a user: the mailbox tree user/NAME/... and every ACL entry naming NAME; list or forget users xfer moved away');

  user
    .command('rename <old> <new>')
    .description('rename user/OLD/... to user/NEW/..., its owner, every ACL entry naming OLD and its quota roots, in one journal record: durable and all-or-nothing when it returns')
    .option('--json', 'print {from, to, mailboxes, aclEntries}')
    .action(async (from: string, to: string, _options: unknown, command: Command) => {
      const result = await withStore(command, (store) => store.renameUser(from, to));
      // bob renamed Bob: LMTP lower-cases bob@ and Bob@ alike, and every delivery to them bounced from then on
      await reportWithWarnings(result, lmtpCaseWarnings(`user/${result.to}`), wantsJson(command), `renamed user ${result.from} to ${result.to} (${result.mailboxes} mailboxes, ${result.aclEntries} ACL entries)`);
    });

  user
    .command('delete <name>')
    .description('delete user/NAME/... with its messages, its quota roots and every ACL entry naming NAME (refused when the tree holds messages, unless --force). The names and ACL entries are gone, durably, in one record; the messages are expunged after it, and a crash meanwhile is finished by the next open')
    .option('--force', 'delete even when the user\'s mailboxes hold messages')
    .option('--json', 'print {user, mailboxes, messages, aclEntries}')
    .action(async (name: string, options: { force?: boolean }, command: Command) => {
      const result = await withStore(command, (store) => deleteUserChecked(store, name, options));
      if (wantsJson(command)) return printJson(result);
      await printLine(`deleted user ${result.user} (${result.mailboxes} mailboxes, ${result.messages} messages, ${result.aclEntries} ACL entries)`);
    });

  user
    .command('moved')
    .description('list the users xfer moved away from this store, where to and when: their mail is refused 451 4.2.1 (append --sysexits: 75) naming the host for limits.xferMovedTempfailMs (5 days, by the wall clock and as long seen by the daemon), then 550 5.1.6; the mark goes once the user exists here again (an xfer back, a mailbox create under user/NAME, a restore)')
    .option('--json', 'print [{user, to, at}] (at: ISO time of the xfer\'s switch)')
    .action(async (_options: unknown, command: Command) => {
      const moved = await withReadStore(command, (store) => store.movedUsers());
      const rows = moved.map((m) => ({ user: m.user, to: m.to, at: new Date(m.at).toISOString() }));
      if (wantsJson(command)) return printJson(rows);
      for (const row of rows) await printLine(`${row.user}\tmoved to ${row.to}\tat ${row.at}`);
    });

  user
    .command('forget-moved <name>')
    .description('remove the moved mark of NAME (see user moved): its mail is then refused 550 5.1.1 no such mailbox again (NOT_FOUND when there is no mark)')
    .option('--json', 'print {user, to, at}')
    .action(async (name: string, _options: unknown, command: Command) => {
      const forgot = await withStore(command, (store) => store.forgetMovedUser(name));
      if (wantsJson(command)) return printJson({ ...forgot, at: new Date(forgot.at).toISOString() });
      await printLine(`user ${forgot.user} is no longer marked as moved to ${forgot.to}`);
    });
}

/** Refuses (REFUSED) a user whose tree holds messages unless --force, in the delete's own batch (ifEmpty). */
export function deleteUserChecked(store: MailStore, name: string, options: { force?: boolean }): Promise<DeleteUserResult> {
  return store.deleteUser(name, { ifEmpty: !options.force });
}
