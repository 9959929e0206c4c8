// `mailstore replica status|check`: the replication state of this store. status: the role and, on
// a primary, each replica's cursor, lag and last contact. check (on a replica): compares it with
// its primary by per-mailbox digests and lists the messages that differ (exit 1), like scrub.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { procedures } from '../../daemon/procedures.js';
import type { CheckResult } from '../../replication/check.js';
import type { StoredReplicationStatus } from '../../replication/status.js';
import { inlineGapAdvice } from '../../replication/inline-gap.js';
import { EXIT } from '../exit-codes.js';
import { absolutePath, printJson, printLine, wantsJson, withReadStore } from '../context.js';

export function register(program: Command): void {
  const replica = program.command('replica').description('replication state: status (primary or replica), check (a replica against its primary)');
  replica
    .command('status')
    .description('the role of this store; on a primary, each replica with its durable seq, lag and last contact')
    .option('--json', 'print as JSON')
    .addHelpText('after', `
Without a daemon this reads the store: a replica's position is the durable cursor replica-NODEID
(written at most once a second while it is connected). 'mailstore serve' shows live figures too
(connected, lag in bytes). Exit codes: 0; 1 a replica's cursor is damaged (named, with what to
do), or this replica lacks message bodies its resync left out (MISSING: snapshot the primary);
others as for every command.`)
    .action(async (_options: unknown, command: Command) => {
      const status = await withReadStore(command, (store) => procedures(store).replicationStatus());
      // a finding, as scrub's: the rest of the status is still right
      if (status.damagedCursors || status.inlineBodiesMissing) process.exitCode = EXIT.findings;
      if (wantsJson(command)) return printJson(status);
      const held = status.heldSeq === undefined ? '' : `; holds tentative changes up to seq ${status.heldSeq} (its primary may have acknowledged them; promote commits them)`;
      await printLine(`role ${status.role}, epoch ${status.epoch}${status.primary ? `, primary ${status.primary}` : ''}, journal at seq ${status.lastSeq}${held}`);
      if (status.replica?.lastError !== undefined) await printLine(replicaErrorLine(status.replica));
      if (status.pendingDamage) {
        await printLine(`DAMAGED: REPLICATION-PENDING has a damaged frame at byte ${status.pendingDamage.offset}, after seq ${status.pendingDamage.afterSeq}: it may hold a change its primary acknowledged; ` +
          'a primary promoted since is refused; promote this replica with --quarantine-damaged-pending, or stop it, move REPLICATION-PENDING into quarantine/ ' +
          "and start it again to follow the new primary without it (docs/REPLICATION.md, 'Successive failovers')");
      }
      if (status.inlineBodiesMissing) await printLine(`MISSING: ${inlineGapAdvice(status.inlineBodiesMissing)}`);
      for (const r of status.replicas) {
        const resync = r.resyncingTo === undefined ? '' : ` (behind the retained journal: resyncing from the snapshot of seq ${r.resyncingTo})`;
        await printLine(`replica ${r.nodeId}: seq ${r.seq}, ${r.lagRecords} records behind, last contact ${new Date(r.lastContact).toISOString()}${resync}`);
      }
      for (const d of status.damagedCursors ?? []) await printLine(`replica ${d.nodeId}: its cursor ${d.path} is damaged: ${d.todo}`);
    });
  replica
    .command('check')
    .description('compare this replica with its primary: per-mailbox digests, narrowed down to the messages that differ')
    .option('--primary <address>', 'the primary (default: the one this replica follows)')
    .option('--replication-key <file>', 'the replication key file (default: the one this replica uses)')
    .option('--scan', 'compute every digest from the messages on both sides (slow: a pass over each index) instead of comparing the kept ones')
    .option('--json', 'print as JSON')
    .addHelpText('after', `
Exit codes: 0 identical; 1 differences (listed), or bodies this replica lacks (MISSING); others as for every command. The check first
waits (up to 10 s) for the replica to reach the primary's seq; a primary taking writes meanwhile
is compared again at its newer seq. Each mailbox keeps its digest up to date as changes apply,
so the check reads one record per mailbox and reads messages only to narrow down a mismatch;
--scan recomputes the digests from the messages (it also finds index records changed under
the kept digest, which 'mailstore scrub' finds too).`)
    .action(async (options: { primary?: string; replicationKey?: string; scan?: boolean }, command: Command) => {
      const result = await withReadStore(command, (store) => procedures(store).replicaCheck({ primary: options.primary, keyFile: options.replicationKey && absolutePath(options.replicationKey), scan: options.scan === true }));
      if (wantsJson(command)) await printJson(result);
      else await printCheck(result);
      process.exitCode = result.identical && !result.inlineBodiesMissing ? EXIT.ok : EXIT.findings;
    });
}

async function printCheck(result: CheckResult): Promise<void> {
  // what it compares, said where it says identical: a flipped byte in the replica's copy of a body is not among it
  const same = "identical (mailboxes, uids, flags and each message's hash; the stored bytes: 'mailstore scrub')";
  await printLine(`${result.mailboxes} mailboxes compared at primary seq ${result.primarySeq} (replica at ${result.replicaSeq}): ${result.identical ? same : `${result.differences.length} difference(s)`}`);
  for (const d of result.differences) {
    await printLine(`${d.mailbox}: ${d.kind}${d.detail ? ` (${d.detail})` : ''}`);
    for (const m of d.messages ?? []) await printLine(`  uid ${m.uid}: primary ${JSON.stringify(m.primary)}, replica ${JSON.stringify(m.replica)}`);
  }
  if (result.inlineBodiesMissing) await printLine(`MISSING: ${inlineGapAdvice(result.inlineBodiesMissing)}`);
}

/**
 * A replica daemon's last failure, kept until it takes a round: while a retry is connected (past
 * its welcome, nothing taken yet) it is said as such, not as "not following".
 */
export function replicaErrorLine(replica: NonNullable<StoredReplicationStatus['replica']>): string {
  const at = replica.lastErrorAt === undefined ? '' : ` at ${new Date(replica.lastErrorAt).toISOString()}`;
  const since = replica.failingSince === undefined ? '' : ` since ${new Date(replica.failingSince).toISOString()}`;
  if (replica.connected) return `connected to its primary again, no change taken yet; its last session failed${at}${since ? ` (failing${since})` : ''}: ${replica.lastError}`;
  return `not following its primary${since} (retried every few seconds; logged once, then when the reason changes); last failure${at}: ${replica.lastError}`;
}
