// `mailstore reconstruct`: rebuild the index from the journal into a fresh LevelDB and swap it in;
// --check compares without changing anything; --from-packs recovers when the journal is lost too.
import type { Command } from 'commander';
import { reconstruct } from '../../scrub/reconstruct.js';
import { printJson, printLine, storeDir, wantsJson } from '../context.js';

export function register(program: Command): void {
  program
    .command('reconstruct')
    .description('rebuild the index from what is on disk (journal; with --from-packs, the packs)')
    .option('--check', 'build a fresh index aside and compare it with the current one; change nothing')
    .option('--from-packs', 'the journal is lost too: find messages by scanning the packs; unreferenced ones go to lost+found, by date')
    .option('--force', 'rebuild even when the result would hold far fewer messages than the index has now')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
Before changing anything it checks that the store looks like itself (STORE identity, packs and
journal markers) and refuses with exit 3 otherwise; it also refuses to turn a store whose journal
is empty but whose packs hold mail into an empty store (use --from-packs).
The old index is moved to quarantine/, never deleted.
Exit codes: 0 done (or --check found no difference); 1 --check found differences; 2 could not run;
3 refused; 4 no store.`)
    .action(async (options: { check?: boolean; fromPacks?: boolean; force?: boolean }, command: Command) => {
      const differences: string[] = [];
      const result = await reconstruct(storeDir(command), {
        check: options.check, fromPacks: options.fromPacks, force: options.force,
        onDifference: (key, detail) => { if (differences.length < 50) differences.push(`${key.toString('hex')}: ${detail}`); },
      });
      if (wantsJson(command)) {
        await printJson({ ...result, sampleDifferences: differences });
      } else {
        await printLine(`${options.check ? 'checked' : 'rebuilt'} from ${result.records} journal records: ${result.messagesAfter} messages (index had ${result.messagesBefore}), ${result.differences} differing keys`);
        for (const d of differences.slice(0, 10)) await printLine(`  ${d}`);
        if (result.journalRecreated) await printLine('the journal was missing: the old one (if any) was moved to quarantine/ and a new one started');
        if (result.lostAndFound?.messages) await printLine(`${result.lostAndFound.messages} message(s) nothing referred to were filed in ${result.lostAndFound.mailbox}`);
        for (const f of result.findings.slice(0, 20)) await printLine(`note: ${f}`);
      }
      if (options.check && result.differences > 0) process.exitCode = 1;
    });
}
