// `mailstore stats`: how big the store is and how much deduplication saves.
import type { Command } from 'commander';
import { limits } from '../../limits.js';
import type { StoreStats } from '../../store/types.js';
import { formatBytes } from '../progress.js';
import { printJson, printLine, wantsJson, withReadStore } from '../context.js';
import { outsideNote } from '../../store/quarantine.js';

export function register(program: Command): void {
  program
    .command('stats')
    .description('messages, mailboxes, unique blobs, bytes stored vs referenced (dedup ratio), packs, journal size; changes nothing')
    .option('--json', 'print as JSON')
    .action(async (_options: unknown, command: Command) => {
      const stats = await withReadStore(command, (store) => store.stats());
      if (wantsJson(command)) return printJson(stats);
      const rows: [string, string][] = [
        ['mailboxes', String(stats.mailboxes)],
        ['messages', String(stats.messages)],
        ['unique blobs', `${stats.blobs}${stats.unreferencedBlobs ? ` (${stats.unreferencedBlobs} unreferenced, awaiting cleanup)` : ''}`],
        ['bytes referenced', `${stats.bytesReferenced} (${formatBytes(stats.bytesReferenced)})`],
        ['bytes stored', `${stats.bytesStored} (${formatBytes(stats.bytesStored)})`],
        ['dedup ratio', `${stats.dedupRatio.toFixed(2)}x`],
        ['packs', `${stats.packs} (${formatBytes(stats.packBytes)})`],
        ['bytes live', `${stats.bytesLive} (${formatBytes(stats.bytesLive)})`],
        ['bytes dead', `${stats.bytesDead} (${formatBytes(stats.bytesDead)}${stats.bytesDead ? ', reclaimed by mailstore compact' : ''})`],
        // a daemon before session 52 reports none
        ...(stats.bytesDeadInline ? [['dead in journal', `${stats.bytesDeadInline} (${formatBytes(stats.bytesDeadInline)}) of released inline bodies, dropped by mailstore compact`] as [string, string]] : []),
        ['journal', `${stats.journalSegments} segment${stats.journalSegments === 1 ? '' : 's'} (${formatBytes(stats.journalBytes)})${unretiredNote(stats)}`],
      ];
      const space = stats.freeSpace;
      // a daemon before session 33 reports no inodes (undefined): shown as for a file system without them
      const freeInodes = typeof space?.freeInodes === 'number' ? space.freeInodes : null;
      // out of inodes, expunge and compact free nothing that counts: say which one is short
      const shortOfInodes = space && freeInodes !== null && freeInodes < space.reserveInodes;
      if (space) rows.push(['free space', space.freeBytes === null ? 'unknown' : `${space.freeBytes} (${formatBytes(space.freeBytes)}); reserve ${formatBytes(space.reserveBytes)}${space.reserveBytes === 0 ? ' (off)' : ''}${space.refusingMail && !shortOfInodes ? ': REFUSING NEW MAIL (free space: expunge and compact)' : ''}`]);
      if (space && freeInodes !== null) rows.push(['free inodes', `${freeInodes}; reserve ${space.reserveInodes}${shortOfInodes ? ': NEW MAIL IS REFUSED (remove files on this file system; df -i)' : ''}`]);
      // a daemon before session 37 reports none
      const held = stats.quarantine;
      if (held) rows.push(['quarantine', held.entries === 0 ? 'empty' : `${held.entries} entr${held.entries === 1 ? 'y' : 'ies'} (${formatBytes(held.bytes)}${outsideNote(held)}): damaged or replaced data set aside, never removed automatically; look, then remove by hand (RECOVERY.md)`]);
      const archive = stats.journalArchive; // none from a daemon before session 48
      if (archive) rows.push(['journal archive', archive.retirementHeld ? `${archive.path}: RETIREMENT HELD: ${archive.retirementHeld}` : archive.path]);
      for (const c of stats.consumers) rows.push([`consumer ${c.name}`, `at seq ${c.seq}, ${c.lagRecords} record${c.lagRecords === 1 ? '' : 's'} behind${c.behind ? ' (FALLING BEHIND)' : ''}`]);
      for (const d of stats.consumersDamaged ?? []) rows.push([`consumer ${d.name}`, damagedCursorLine(d.why)]);
      for (const [name, value] of rows) await printLine(`${name.padEnd(17)} ${value}`);
    });
}

/**
 * Only snapshots retire the journal (and move inline bodies into packs). The daemon takes them by
 * itself; a store the CLI alone writes (mailbox_command deliveries) never does, and its journal grew
 * with history without a word. Said past twice the daemon's interval, so a daemon's snapshot in
 * progress is not taken for one missing. Nothing from a daemon before session 37 (no journalLastSeq).
 */
function unretiredNote(stats: StoreStats): string {
  if (typeof stats.journalLastSeq !== 'number') return '';
  const since = stats.journalLastSeq - (stats.newestSnapshotSeq ?? stats.journalFirstSeq - 1);
  if (since <= 2 * limits.snapshotEveryRecords) return '';
  return `; ${since} records since the newest snapshot (${stats.newestSnapshotSeq ?? 'none'}): without 'mailstore serve', which takes snapshots by itself, nothing retires the journal: run 'mailstore snapshot' from cron`;
}

/** A damaged consumer cursor's line: its error says what to do; what it holds back meanwhile. */
export function damagedCursorLine(why: string): string {
  return `DAMAGED: ${why} (no journal segment is retired until then)`;
}
