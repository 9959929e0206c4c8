// The `backup` step of `npm run bench` (issue 14): the corpus as 20 mailboxes, backed up, changed
// (deliveries and expunges), backed up again, restored whole and one mailbox, by mailstore
// (measure/backup.ts) and by restic on the same messages as a Maildir (peers/restic.sh). In each
// round restic runs first, then mailstore, like every peer/mailstore pair of the bench.
import { join } from 'node:path';
import { run, jsonLines, type Bench } from './engine.js';
import type { CorpusInfo } from './report.js';

/** The one mailbox restored alone (of box00..box19). */
export const BACKUP_ONE_MAILBOX = 'box07';

export async function backupMeasurements(bench: Bench, corpus: CorpusInfo, work: string, withPeers: boolean): Promise<void> {
  if (!corpus.list) return;
  const dir = join(work, 'backup');
  // 1,000 deliveries and 2,000 expunges at 20k messages: 5 % and 10 % of the corpus
  const deliveries = Math.max(1, Math.round(corpus.messages / 20)), expunges = Math.max(1, Math.round(corpus.messages / 10));
  const prepared = await bench.child(corpus.name, 'backup', ['--prepare', '--dir', dir, '--list', corpus.list, '--mailboxes', '20', '--deliveries', String(deliveries), '--expunges', String(expunges)], { peer: 'mailstore', measurement: 'backup-prepare' });
  if (prepared.some((r) => r.error)) return;
  if (withPeers) {
    const shown = `tools/bench/peers/restic.sh ${bench.paths.display(dir)} ${BACKUP_ONE_MAILBOX}`;
    bench.command(shown);
    const ran = await run('bash', [join(bench.paths.peers, 'restic.sh'), dir, BACKUP_ONE_MAILBOX]);
    const lines = jsonLines(ran.stdout);
    if (lines.length === 0) bench.add(corpus.name, { peer: 'restic', measurement: 'backup-full', error: `restic.sh exited ${ran.code} with no output` });
    for (const line of lines) bench.add(corpus.name, { ...line, command: shown });
  }
  await bench.child(corpus.name, 'backup', ['--floor', '--dir', dir], { peer: 'floor-compress', measurement: 'backup-full' });
  await bench.child(corpus.name, 'backup', ['--run', '--dir', dir, '--cli', bench.paths.cli, '--mailbox', BACKUP_ONE_MAILBOX], { peer: 'mailstore', measurement: 'backup-full' });
}
