// `mailstore compact [--dry-run] [--grace DURATION] [--json]`: give the bytes of expunged messages
// back (store.compact, src/store/compact.ts). For cron and for people; a running daemon compacts
// by itself. A dry run opens the store read-only and changes nothing.
import type { Command } from 'commander';
import { procedures } from '../../daemon/procedures.js';
import { parseDuration } from '../dates.js';
import type { CompactResult } from '../../store/compact.js';
import { createProgress, formatBytes, formatDuration } from '../progress.js';
import { printJson, printLine, wantsJson, withReadStore, withStore } from '../context.js';
import { phase, reportPhases } from '../../phases.js';

interface CompactCliOptions { dryRun?: boolean; grace?: number; tombstoneRetention?: number }

export function register(program: Command): void {
  program
    .command('compact')
    .description('reclaim the space of expunged messages: packs whose dead share passed the threshold are rewritten with their live records only, the old packs deleted once no reader holds them. Safe against crashes at any point (docs/FORMAT.md, "Compaction")')
    .option('--dry-run', 'report what would be rewritten and reclaimed; change nothing (opens the store read-only)')
    .option('--grace <duration>', 'keep blobs released less than this long ago (e.g. 1h, 7d; default 0: reclaim now)', (text: string) => parseDuration(text, '--grace'))
    .option('--tombstone-retention <duration>', 'drop the change-log entries of uids expunged longer ago than this (e.g. 7d; default 30d), raising each mailbox\'s vanished floor: a QRESYNC client that last synced before is told the uid ranges that hold no message instead (docs/FORMAT.md, "The vanished floor")', (text: string) => parseDuration(text, '--tombstone-retention'))
    .option('--json', 'print {dryRun, tombstonesExpired, packsRewritten, packsWritten, packsRemoved, packsPending, blobsCopied, bytesCopied, blobsReclaimed, inlineReclaimed?, inlineMoved?, bytesBefore, bytesAfter, skipped, foreignPacks?, ms} as JSON')
    .addHelpText('after', '\nExit codes: 0 done (also when nothing was worth rewriting); 1 when a pack was skipped because a record failed its hash or could not be read (run mailstore scrub) or because it is another store\'s file that messages of this one were appended to; REFUSED (see mailstore --help) when the store is degraded or its index does not add up.')
    .action(async (options: CompactCliOptions, command: Command) => {
      phase('modules loaded');
      const progress = wantsJson(command) ? undefined : createProgress('compacting (live blobs copied)');
      let copied = 0;
      const compact = (store: Parameters<Parameters<typeof withStore>[1]>[0]) => procedures(store).compact({
        dryRun: Boolean(options.dryRun), graceMs: options.grace ?? 0,
        ...(options.tombstoneRetention === undefined ? {} : { tombstoneRetentionMs: options.tombstoneRetention }),
        onProgress: (p) => {
          if (p.phase !== 'copy' || !progress) return;
          progress.advance(1, p.bytesDone - copied);
          copied = p.bytesDone;
          progress.position(p.bytesDone, p.bytesTotal);
        },
      });
      const run = async (store: Parameters<Parameters<typeof withStore>[1]>[0]) => {
        phase('store opened');
        try {
          return await compact(store);
        } finally {
          phase('compacted'); // inline bodies moved, tombstones expired, the compactor's cursor moved (CompactResult.phases)
        }
      };
      let result: CompactResult;
      try {
        result = options.dryRun ? await withReadStore(command, run) : await withStore(command, run);
      } finally {
        progress?.finish();
      }
      phase('closed');
      reportPhases();
      if (result.skipped.length > 0) process.exitCode = 1;
      if (wantsJson(command)) return printJson(result);
      await printSummary(result);
    });
}

async function printSummary(r: CompactResult): Promise<void> {
  const would = r.dryRun ? 'would rewrite' : 'rewrote';
  const packs = r.packsRewritten.length;
  await printLine(`${would} ${packs} pack${packs === 1 ? '' : 's'}${packs ? ` (${r.packsRewritten.join(', ')})` : ''}; ${r.dryRun ? 'would reclaim' : 'reclaimed'} ${r.blobsReclaimed} blob${r.blobsReclaimed === 1 ? '' : 's'}`);
  if (!r.dryRun) await printLine(`copied ${r.blobsCopied} live blob${r.blobsCopied === 1 ? '' : 's'} (${formatBytes(r.bytesCopied)}) into ${r.packsWritten.length ? `pack ${r.packsWritten.join(', ')}` : 'no new pack'}`);
  await printLine(`packs: ${formatBytes(r.bytesBefore)} before, ${formatBytes(r.bytesAfter)} after${r.dryRun ? ' (estimate)' : ''}; ${formatDuration(r.ms / 1000)}`);
  if (r.inlineReclaimed) await printLine(`${r.dryRun ? 'would drop' : 'dropped'} ${r.inlineReclaimed} released inline bod${r.inlineReclaimed === 1 ? 'y' : 'ies'} (in the journal: their segments retire with the next snapshot)`);
  if (r.tombstonesExpired) await printLine(`dropped ${r.tombstonesExpired} tombstone${r.tombstonesExpired === 1 ? '' : 's'} of expunged uids past their retention (vanished floors raised)`);
  if (r.packsPending.length) await printLine(`retired packs still held by a reader or still in use, deleted later: ${r.packsPending.join(', ')}`);
  for (const s of r.skipped) await printLine(`skipped pack ${s.pack}: ${s.why}`);
  for (const f of r.foreignPacks ?? []) await printLine(`pack file ${f.pack} is not this store's (${f.why}): ${f.setAsideTo ? `moved to ${f.setAsideTo}` : r.dryRun ? 'would be moved to quarantine/' : 'left in packs/'}, never deleted; look at it, then remove it by hand (RECOVERY.md)`);
  const deferred = r.deferredForSpace;
  if (deferred) await printLine(`left for later, the disk is nearly full: pack${deferred.packs.length === 1 ? '' : 's'} ${deferred.packs.join(', ')} (their live records do not fit in the ${formatBytes(deferred.roomBytes)} free above the free-space reserve's floor; compact again once this run's space is back, or free space)`);
}
