// `mailstore snapshot`: writes a verified snapshot of the index at its current seq, keeps the two
// newest, and retires the journal segments that the older kept snapshot and every consumer are
// past (deleted, or moved to the journal archive). For cron and for people: a running store
// snapshots by itself.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { procedures } from '../../daemon/procedures.js';
import { limits } from '../../limits.js';
import { formatBytes } from '../progress.js';
import { absolutePath, printJson, printLine, wantsJson, withStore } from '../context.js';
import { EXIT } from '../exit-codes.js';
import type { RetireResult, SnapshotResult } from '../../store/snapshots.js';

export function register(program: Command): void {
  program
    .command('snapshot')
    .description('snapshot the index (the whole metadata state at one journal seq, checksummed) and retire the journal it covers; prints seq, bytes, records, duration and what was retired')
    .option('--journal-archive <dir>', "from now on move retired journal segments into DIR (an existing directory outside the store that only its owner may write; a directory of its own per store) instead of deleting them; 'off' deletes them again")
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
A rebuild of the index (open after the index was lost, 'mailstore reconstruct') replays the newest
snapshot that verifies plus the journal after it, instead of the whole history. The ${limits.snapshotsKept} newest
verified snapshots are kept; journal segments are retired only when every record in them is at or
below the older kept snapshot's seq and every consumer's cursor ('mailstore consumers'), and not at
all while fewer than ${limits.snapshotsKept} snapshots verify, so a damaged newest snapshot still has the one
before it, or the whole journal, to fall back to. A damaged snapshot older than the kept ones is
moved to quarantine/ (at most ${limits.snapshotsQuarantinedMax} there; a further one is deleted). Retirement happens
only after the snapshot is durable and verified; a crash at any point leaves every record in the
journal or in a snapshot.

Exit codes: 0 the snapshot is written (whether or not the journal could be retired: the output
says why not); 1 it is written, but a consumer cursor or JOURNAL-ARCHIVE is damaged, so nothing
was retired (the line names the file and what to do; scrub reports it as store-file-damage);
otherwise as every command (mailstore --help).`)
    .action(async (options: { journalArchive?: string }, command: Command) => {
      const answer = await withStore(command, async (store) => {
        const archive = options.journalArchive === undefined ? undefined : options.journalArchive === 'off' ? null : absolutePath(options.journalArchive);
        return procedures(store).snapshot(archive);
      });
      // a daemon before session 31 reports no damaged older snapshots (its snapshot was written all the same: INTERNAL, exit 70, before)
      const { archive } = answer;
      const result = { ...answer.result, damagedSnapshots: (answer.result.damagedSnapshots as SnapshotResult['damagedSnapshots'] | undefined) ?? [] };
      // the snapshot is durable and verified; a damaged cursor or JOURNAL-ARCHIVE held the retirement: a finding, as scrub's store-file-damage (before: CORRUPT, exit 6, as if nothing was written)
      if (result.retired.damagedFile) process.exitCode = EXIT.findings;
      if (wantsJson(command)) return printJson({ ...result, journalArchive: archive ?? null });
      await printLine(`snapshot ${result.name}: seq ${result.seq}, ${result.records} records, ${formatBytes(result.bytes)}, ${result.durationMs} ms${result.reused ? ' (already there, verified)' : ''}`);
      if (result.removedSnapshots.length > 0) await printLine(`removed older snapshots: ${result.removedSnapshots.join(', ')}`);
      for (const d of result.damagedSnapshots) await printLine(`damaged older snapshot ${d.name} ${d.quarantined ? `moved to ${d.quarantined}` : `deleted (${limits.snapshotsQuarantinedMax} damaged snapshots are in quarantine/ already)`}: ${d.why}`);
      const r = result.retired;
      if (r.damagedFile) await printLine(`journal not retired, the snapshot is written and verified: a file retirement reads is damaged (scrub reports it as store-file-damage; exit 1): ${r.damagedFile.why}`);
      else if (r.skipped) await printLine(`journal not retired: ${r.skipped}`);
      else if (r.held) await printLine(`journal not retired: ${r.held}`);
      else if (r.segments.length === 0 && r.heldBy) await printLine(heldLine(r.heldBy));
      else if (r.segments.length === 0) await printLine(`journal: nothing to retire (retirement may pass seq ${r.throughSeq}; the newest segment is never retired)`);
      else await printLine(`journal: retired ${r.segments.length} segment${r.segments.length === 1 ? '' : 's'} (${formatBytes(r.bytes)}) through seq ${r.throughSeq}${r.archive ? `, moved to ${r.archive}` : ', deleted'}`);
      if (r.segments.length > 0 && r.heldBy) await printLine(heldLine(r.heldBy));
    });
}

/** A consumer left behind holds the journal: said, never a silent "nothing to retire". */
function heldLine(held: NonNullable<RetireResult['heldBy']>): string {
  return `journal kept from seq ${held.seq + 1} on for consumer ${held.consumer} (${held.lagRecords} records behind; 'mailstore consumers' lists them, '--remove ${held.consumer}' lets one gone for good go)`;
}
