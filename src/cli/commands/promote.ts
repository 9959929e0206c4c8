// `mailstore promote`: turns this replica into the primary (src/replication/promote.ts): the epoch
// goes up by one, the store takes writes, and the old primary is fenced when it hears of it.
import type { Command } from 'commander';
import { procedures } from '../../daemon/procedures.js';
import { renewedWhy } from '../../replication/promote.js';
import { printJson, printLine, wantsJson, warn, withStore } from '../context.js';

export function register(program: Command): void {
  program
    .command('promote')
    .description('make this replica the primary (epoch + 1); the old primary refuses writes once it hears of the new epoch')
    .option('--quarantine-damaged-pending', 'go on although REPLICATION-PENDING has a damaged frame that may hold acknowledged changes (the file is moved into quarantine/ as REPLICATION-PENDING-damaged-TIME-PID)')
    .option('--force', "promote although this replica lacks message bodies its resync left out ('replica status' says MISSING): those messages stay unreadable")
    .option('--json', 'print as JSON')
    .addHelpText('after', `
Stop the replica's daemon first (or let the daemon promote it). The old primary is told at once if
it can be reached; otherwise it is fenced by the first node that brings it the new epoch. Changes
it acknowledged with synchronous replicas are on every synchronous replica; with rolling
replication the newest ones may be only on the old primary. Each mailbox keeps its uidValidity
only when the old primary, reached, says it committed nothing this store lacks once this store
followed it to its fence (at most 60 s); otherwise every mailbox gets a new one (IMAP clients
read them again; a uid is never given for other mail). For a switchover, promote while the old
primary still runs.`)
    .action(async (options: { quarantineDamagedPending?: boolean; force?: boolean }, command: Command) => {
      const result = await withStore(command, (store) => procedures(store).promote({ quarantineDamagedPending: options.quarantineDamagedPending === true, ...(options.force ? { force: true } : {}) }));
      for (const line of result.settingWarnings ?? []) warn(line);
      if (result.inlineBodiesMissing) warn(`WARNING: promoted with --force: ${result.inlineBodiesMissing} message bod${result.inlineBodiesMissing === 1 ? 'y' : 'ies'} this store never received read CORRUPT ('mailstore scrub' lists them)`);
      if (wantsJson(command)) return printJson(result);
      if (result.damagedPendingFrame) await printLine(`warning: a damaged tentative frame was set aside (${result.damagedPendingFrame.quarantinedAs}); changes in it were not applied`);
      await printLine(`promoted: primary at epoch ${result.epoch} (seq ${result.seq}); old primary ${result.oldPrimaryFenced ? 'fenced' : 'not reached (fenced once it hears of the epoch)'}`);
      await printLine(result.uidValidity === 'kept'
        ? `uidValidity kept: this store holds every change the old primary committed (seq ${result.heldSeq})`
        : `new uidValidity for every mailbox (${result.mailboxesRenewed}): ${renewedWhy(result.oldPrimarySeq, result.heldSeq)}, so its readers may have seen uids this store lacks; IMAP clients read the mailboxes again`);
    });
}
