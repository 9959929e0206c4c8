// The `churn` step (issue 12): the same 80 % of the main corpus expunged in mailstore (then
// compaction) and in Dovecot mdbox (then `doveadm purge`); both timed, both sizes. The UID list is
// written once per run (seeded), so both sides and every round expunge the same messages.
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import type { CorpusInfo } from './report.js';
import { type Bench, jsonLines, run } from './engine.js';
import { churnUids, formatUidList } from './churn.js';
import { progress } from './common.js';

/** Share of the corpus expunged before compaction. */
export const CHURN_SHARE = 0.8;

export async function churnStep(bench: Bench, corpus: CorpusInfo, work: string, options: { peers: boolean; seed: string }): Promise<void> {
  const uidFile = join(work, 'churn-uids.txt');
  await writeFile(uidFile, formatUidList(churnUids(corpus.messages, CHURN_SHARE, options.seed)));
  if (options.peers) {
    const script = join(bench.paths.peers, 'churn-dovecot.sh');
    const shown = `tools/bench/peers/churn-dovecot.sh ${bench.paths.display(corpus.source)} ${bench.paths.display(corpus.work)} ${bench.paths.display(uidFile)}`;
    bench.command(shown);
    progress(`churn: Dovecot mdbox + doveadm purge on ${corpus.name}`);
    const ran = await run('bash', [script, corpus.source, corpus.work, uidFile]);
    const lines = jsonLines(ran.stdout);
    if (lines.length === 0) bench.add(corpus.name, { peer: 'dovecot-mdbox', measurement: 'churn', error: `churn-dovecot.sh exited ${ran.code} with no output` });
    for (const line of lines) bench.add(corpus.name, { ...line, command: shown });
  }
  const store = join(work, 'store-churn-compact');
  await run('rm', ['-rf', store]);
  await bench.child(corpus.name, 'churn', ['--store', store, '--mbox', corpus.mbox, '--expunge', uidFile], { peer: 'mailstore', measurement: 'churn' });
  await run('rm', ['-rf', store]);
}
