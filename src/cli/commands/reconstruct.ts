// `mailstore reconstruct`: recover the index or the journal from the best surviving source and say
// which one it used; --check compares without changing anything; --from-packs is the last resort.
import type { Command } from 'commander';
import { MailstoreError } from '../../errors.js';
import { reconstruct, type ReconstructResult } from '../../scrub/reconstruct.js';
import { boundYoungGeneration } from '../../young-generation.js';
import { lockWaitOptions, printJson, printLine, refuseBesideDaemon, refuseRootInOthersStore, storeDir, wantsJson } from '../context.js';

export function register(program: Command): void {
  program
    .command('reconstruct')
    .description('recover the index or the journal from the best surviving source (journal, index, packs) and say which')
    .option('--check', 'build a fresh index from the journal aside, compare it with the current one, say which source a recovery would use; change nothing')
    .option('--from-index', 'write a new journal from the index (a checkpoint of its whole state), even when the journal looks complete')
    .option('--from-journal', 'rebuild the index from the journal, even when the index holds more (refused without --force if it would keep less)')
    .option('--from-packs', 'the last resort, also when the journal and the index are both lost: after the best source, messages found only in the packs go to lost+found, by date')
    .option('--force', 'proceed even when the result would keep less than the index has now (fewer messages, mailboxes or ACL entries)')
    .option('--mailbox <prefix>', 'with --check: compare only this mailbox and those below it (counts, messages, flags, change log, name and ACL entries); exit 1 when they differ')
    .option('--identity-from-markers', 'STORE alone was lost (check the mounts first): write it again from the packs/ and journal/ markers, which must name the same store')
    .option('--json', 'print the result as JSON (source, reason, counts before and after)')
    .addHelpText('after', `
Which source: the journal when it replays whole (no damage, no gap, up to what the index applied);
otherwise the index, when it is intact (it was not itself rebuilt from the journal at this open):
a new journal holding the index's whole state is written and swapped in. The packs come last
(--from-packs). The old index or journal is moved to quarantine/, never deleted.

Before changing anything it checks that the store looks like itself (STORE identity, packs and
journal markers) and refuses with exit 3 otherwise. A lost STORE file is written again only
with --identity-from-markers, and only when packs/ and journal/ both hold a marker naming the
same store: a missing STORE also looks like an unmounted partition, so check the mounts first. A lost journal/ directory is started afresh
when the index is there to fill it (or with --from-packs); check the journal's partition first.
A rebuild that would keep fewer messages, mailboxes or ACL entries than the index has now is
refused (exit 3) unless --force.

Scoped check (--check --mailbox PREFIX, like Cyrus's reconstruct -r user.x run to look, not to
change): the journal is replayed into an index built aside (as long as a whole --check), and
only the keys of PREFIX's subtree are compared. A scoped recovery is not offered: one journal
record can touch several mailboxes (a move, a user rename), so a recovery rebuilds the whole
index (without --mailbox) and is refused when it would keep less.

Exit codes: 0 done, the store whole (or --check: the journal is complete and matches the index,
or the subtree); 1 --check found differences (in the subtree, with --mailbox) or an incomplete
journal, or a recovery rebuilt from a damaged or incomplete journal (done, the store still
degraded: what is missing is said), or the index keeps a message whose body does not read back
(its only copy, inside a journal record, damaged or gone: scrub's blob-missing; --check too); 2 could not
run; 3 refused; 4 no store (or, with --mailbox, no such mailbox in the index or the journal);
5 invalid options (--mailbox without --check).`)
    .action(async (options: { check?: boolean; fromIndex?: boolean; fromJournal?: boolean; fromPacks?: boolean; force?: boolean; mailbox?: string; identityFromMarkers?: boolean }, command: Command) => {
      if (options.fromIndex && options.fromJournal) throw new MailstoreError('INVALID', 'use either --from-index or --from-journal');
      if (options.mailbox !== undefined && !options.check) throw new MailstoreError('INVALID', `--mailbox needs --check: a recovery rebuilds the whole index, since one record can touch several mailboxes (run 'mailstore reconstruct' without --mailbox)`);
      await refuseBesideDaemon(storeDir(command), 'reconstruct');
      refuseRootInOthersStore(storeDir(command));
      boundYoungGeneration(); // a replay of the whole journal and a pass over both indexes (young-generation.ts)
      const differences: string[] = [];
      const result = await reconstruct(storeDir(command), {
        check: options.check, fromPacks: options.fromPacks, force: options.force, mailbox: options.mailbox, identityFromMarkers: options.identityFromMarkers,
        from: options.fromIndex ? 'index' : options.fromJournal ? 'journal' : undefined,
        onDifference: (key, detail) => { if (differences.length < 50) differences.push(`${key.toString('hex')}: ${detail}`); },
        ...lockWaitOptions(command),
      });
      // rebuilt from a journal with a gap: the index is marked and the store stays degraded (exit 0
      // had told a script the store was whole again); so is a store whose index keeps messages
      // with no readable body (scrub's damage, its exit code)
      const journalDegraded = !options.check && !result.journalIntact && !result.journalRewritten;
      const unreadable = result.unreadable?.bodies.length ?? 0;
      const degraded = journalDegraded || (!options.check && unreadable > 0);
      if (wantsJson(command)) await printJson({ ...result, degraded, sampleDifferences: differences });
      else await printResult(result, Boolean(options.check), differences);
      if (journalDegraded && !wantsJson(command)) {
        await printLine(`the store is still degraded: the journal is damaged or incomplete (${result.journalProblems.slice(0, 2).join('; ')}). Put the missing segments back (a copy, the journal archive) and run 'mailstore reconstruct' again; or, to accept the loss, 'mailstore reconstruct --from-packs' (messages in packs into lost+found), then 'mailstore reconstruct --from-index' (RECOVERY.md)`);
      }
      const differing = result.scope ? result.scope.differences : result.differences;
      if ((options.check && (differing > 0 || !result.journalIntact || unreadable > 0)) || degraded) process.exitCode = 1;
    });
}

async function printResult(result: ReconstructResult, check: boolean, differences: string[]): Promise<void> {
  const counts = (c: ReconstructResult['before']) => `${c.messages} messages, ${c.mailboxes} mailboxes, ${c.aclEntries} ACL entries`;
  if (check && result.scope) {
    const s = result.scope;
    await printLine(`checked ${s.mailboxes} mailbox(es) under ${s.mailbox} against ${result.records} journal records: ${s.differences} differing keys; journal ${result.journalIntact ? 'complete' : 'damaged or incomplete'}`);
    if (s.differences > 0 || !result.journalIntact) await printLine(`a recovery ('mailstore reconstruct', of the whole store) would use the ${result.source}: ${result.reason}`);
  } else if (check) {
    await printLine(`checked from ${result.rebuiltFrom}: ${result.messagesAfter} messages (index had ${result.messagesBefore}), ${result.differences} differing keys; journal ${result.journalIntact ? 'complete' : 'damaged or incomplete'}`);
    await printLine(`a recovery would use the ${result.source}: ${result.reason}`);
  } else {
    await printLine(`source: ${result.source} — ${result.reason}`);
    if (result.journalRewritten) {
      await printLine(`wrote a new journal from the index: ${result.journalRewritten.records} records (seqs ${result.journalRewritten.firstSeq}..${result.journalRewritten.lastSeq}); kept ${counts(result.after)} (index had ${counts(result.before)})`);
    } else {
      await printLine(`rebuilt from ${result.rebuiltFrom}: ${result.messagesAfter} messages (index had ${result.messagesBefore}), ${result.differences} differing keys`);
    }
  }
  // The keys a rebuild from the journal would change; beside the point when the index was kept.
  if (check || !result.journalRewritten) for (const d of differences.slice(0, 10)) await printLine(`  ${d}`);
  if (result.identityRecreated) await printLine(`STORE was missing or damaged: written again from the packs/ and journal/ markers (store ${result.identityRecreated})`);
  for (const dir of result.markersRestored ?? []) await printLine(`${dir}/STORE-ID was missing or damaged: written again, since every ${dir === 'packs' ? 'pack' : 'journal segment'} there names this store (the old marker, if any, is in quarantine/)`);
  if (result.journalRecreated) await printLine('the journal was missing: the old one (if any) was moved to quarantine/ and a new one started');
  if (result.lostAndFound?.messages) await printLine(`${result.lostAndFound.messages} message(s) nothing referred to were filed in ${result.lostAndFound.mailbox}`);
  if (result.unreadable && result.unreadable.bodies.length > 0) await printLine(unreadableLine(result.unreadable));
  for (const f of result.findings.slice(0, 20)) await printLine(`at open: ${f}`);
  for (const p of result.journalProblems.filter((text) => text.startsWith('snapshot ')).slice(0, 5)) await printLine(p);
}

/** The messages whose body does not read back, and what to run. */
function unreadableLine(unreadable: NonNullable<ReconstructResult['unreadable']>): string {
  const refs = unreadable.bodies.flatMap((f) => ('refs' in f ? f.refs : []));
  const named = refs.slice(0, 5).map((m) => `${m.mailbox}:${m.uid}`).join(', ') + (refs.length > 5 ? ` and ${refs.length - 5} more` : '');
  return `${unreadable.messages} message(s) have no readable body (${named || `${unreadable.bodies.length} blob(s) no message uses`}): their only copy, inside a journal record, is damaged or gone; the index keeps them. ` +
    `'mailstore scrub' lists each; 'mailstore scrub --repair --source COPY' (a copy or replica of this store) brings them back (RECOVERY.md)`;
}
