// `mailstore bench --corpus PATH`: mailstore beside Dovecot, Cyrus and git on the admin's own mail
// (src/bench/corpus-run.ts), so the question "should this 2 TB go onto mailstore" is answered on
// that mail, by the installed tool. Needs no store: it makes and removes its own.
import { Option, type Command } from 'commander';
import { MailstoreError } from '../../errors.js';
import { PEER_NAMES, runCorpusBench } from '../../bench/corpus-run.js';
import { PACKAGE_ROOT } from '../../bench/engine.js';
import type { MailFormat } from '../../formats/detect.js';
import { EXIT } from '../exit-codes.js';
import { catchInterrupt } from '../interrupt.js';
import { createProgress, type Progress } from '../progress.js';
import { parsePositiveInteger, printJson, printLine, wantsJson, warn } from '../context.js';

interface BenchCommandOptions {
  corpus: string;
  peers: string | false;
  out: string;
  quick?: boolean;
  format?: MailFormat | 'detect';
  messages?: number;
  deliver?: number;
  rounds?: number;
}

export function register(program: Command): void {
  program
    .command('bench')
    .description('measure mailstore beside Dovecot, Cyrus and git on a corpus of your own mail; writes a Markdown report, raw JSON and charts')
    .requiredOption('--corpus <path>', 'an mbox file, a Maildir (or Maildir++ tree), a directory of .eml files or a public-inbox archive')
    .option('--peers <list>', `peers to run where installed, comma-separated (${PEER_NAMES.join(',')})`, PEER_NAMES.join(','))
    .option('--no-peers', 'mailstore alone (and no b3sum/cat floor)')
    .option('--out <dir>', 'where the report, results.json, charts and the prepared corpus go', 'mailstore-bench')
    .option('--quick', 'a short run: 50 deliveries, Dovecot mdbox only')
    .addOption(new Option('--format <format>', 'corpus format (default: detect)').choices(['detect', 'mbox', 'maildir', 'eml', 'public-inbox']))
    .option('--messages <n>', 'only the first N messages of the corpus', parsePositiveInteger('--messages'))
    .option('--deliver <n>', 'messages delivered one at a time, by each system (default 500; --quick 50)', parsePositiveInteger('--deliver'))
    .option('--rounds <n>', 'rounds of the goal steps, peers and mailstore alternating; each goal is the median of the rounds (default 3; --quick 1)', parsePositiveInteger('--rounds'))
    .option('--json', 'print the paths written and every result as JSON')
    .addHelpText('after', `
What runs, in order (each mailstore measurement in its own node process, so its peak RSS is its own):
  prepare   the corpus is streamed once into OUT/prepared: one file per message (a Maildir) and one
            mbox, the same bytes for every system. Kept for the next run with the same --corpus;
            an interrupted preparation (Ctrl-C, a killed process) resumes where it stopped. After
            a power cut, remove OUT/prepared. Disk: the prepared corpus takes about twice the
            corpus's size, and each system's store about its size again (the peers' stay until
            the end of the run); --messages N benchmarks on the first N messages.
  peers     tools/bench/peers/run.sh (shipped with the package): Dovecot (doveadm import, fetch,
            force-resync, LMTP), Cyrus (LMTP, reconstruct), git (hash-object, fsck), and the
            b3sum/cat/dd floor. The peers are checked first: one named with --peers that is not
            installed stops the command at once (exit 4); of the default list, the missing ones
            are named at once and left out (the report lists them). Install them with:
            sudo ${PACKAGE_ROOT}/tools/bench/peers/setup.sh
  mailstore bulk import of the mbox (library) and of the corpus itself (\`mailstore import\`), read of
            every message hash-verified, scrub, space on disk, index rebuild, recovery after
            SIGKILL, and one-at-a-time delivery of the first --deliver messages (the one-sync
            rows and their sync floors warm: the corpus's next --deliver messages untimed first,
            in the same process; the report gives the cold figures beside them).
  rounds    the steps behind a goal (the peers' Dovecot mdbox and Cyrus runs, mailstore import,
            read, scrub with its b3sum floor, rebuild, delivery) run again in rounds 2..N, peers
            then mailstore each time, so the two alternate; each goal row is the median of the
            per-round ratios with the spread, the verdict on the median; the tables show round 1.
Writes OUT/report.md (tables with ratios to each peer, the goals, charts beside the tables),
OUT/results.json (every figure, raw) and OUT/charts/*.svg. The stores it and the peers make are
removed at the end; OUT/prepared is kept for the next run.
Progress lines go to stderr. Exit code 0 when the report was written; 130 when stopped during
preparation by Ctrl-C (143 SIGTERM, 129 SIGHUP; run the same command again to resume).`)
    .action(runBench);
}

async function runBench(options: BenchCommandOptions, command: Command): Promise<void> {
  const peers = options.peers === false ? [] : options.peers.split(',').map((p) => p.trim()).filter(Boolean);
  for (const peer of peers) {
    if (!(PEER_NAMES as readonly string[]).includes(peer)) throw new MailstoreError('INVALID', `unknown peer ${JSON.stringify(peer)} (peers: ${PEER_NAMES.join(', ')})`);
  }
  const interrupt = catchInterrupt('the corpus preparation');
  let progress: Progress = createProgress('prepare corpus');
  try {
    const result = await runCorpusBench({
      corpus: options.corpus, out: options.out, peers, quick: options.quick === true,
      peersNamed: command.getOptionValueSource('peers') === 'cli', rounds: options.rounds ?? (options.quick ? 1 : 3),
      format: options.format === 'detect' ? undefined : options.format, messages: options.messages, deliver: options.deliver,
      argv: process.argv.slice(2),
      onPrepareStart: (messages) => { if (messages) progress = createProgress('prepare corpus', { messages }); },
      onPrepareDone: () => progress.finish(),
      onPrepared: (bytes, fraction) => { progress.advance(1, bytes); if (fraction !== undefined) progress.position(fraction, 1); },
      onSkip: (path, why) => { progress.finish(); warn(`skipped ${path}: ${why}`); },
      shouldStop: () => interrupt.requested,
    });
    progress.finish();
    if (result.interrupted) {
      warn(`stopped after preparing ${result.prepared.messages} messages; run the same command again to resume`);
      process.exitCode = EXIT.interrupted;
      return;
    }
    const report = result.report!;
    if (wantsJson(command)) await printJson({ report: report.markdown, json: report.json, charts: report.charts, corpus: result.data!.corpora[0], results: result.data!.results });
    else for (const line of [`report: ${report.markdown}`, `results: ${report.json}`, `charts: ${report.charts.length ? report.charts.join(', ') : 'none'}`]) await printLine(line);
  } finally {
    progress.finish();
    interrupt.dispose();
  }
}
