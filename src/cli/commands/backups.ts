// `mailstore backups`: the snapshots of a backup repository, oldest first.
import type { Command } from 'commander';
import { REPO_HELP, withRepository } from '../backup-repo.js';
import { printJson, printLine, wantsJson } from '../context.js';
import { lockRepository } from '../../backup/repository.js';
import { formatBytes } from '../progress.js';

export function register(program: Command): void {
  program
    .command('backups')
    .description('list the snapshots of a backup repository, oldest first')
    .option('--repo <dir>', 'the backup repository')
    .option('--key-file <file>', 'the key file of an encrypted repository')
    .option('--repo-credentials <file>', 'for an s3: --repo (s3:http://host:port/bucket/prefix): a file holding ACCESS_KEY:SECRET_KEY (else $MAILSTORE_S3_ACCESS_KEY and $MAILSTORE_S3_SECRET_KEY)')
    .option('--json', 'print {repository, snapshots: [{id, time, storeId, hostname, seq, mailboxes, messages, bytes, blobs, parent?}]} (parent: a delta snapshot builds on it)')
    .addHelpText('after', REPO_HELP)
    .action(async (_options: unknown, command: Command) => {
      const result = await withRepository(command, false, async (repo) => {
        const lock = await lockRepository(repo, false, { readOnly: true });
        try {
          const snapshots = (await repo.snapshots()).map(({ id, snapshot: s }) => ({
            id, time: new Date(s.time).toISOString(), storeId: s.storeId, hostname: s.hostname, seq: s.seq, ...s.counts, ...(s.parent ? { parent: s.parent } : {}),
          }));
          return { repository: { id: repo.config.id, encrypted: Boolean(repo.config.encryption) }, snapshots };
        } finally {
          await lock.release();
        }
      });
      if (wantsJson(command)) return printJson(result);
      if (result.snapshots.length === 0) return printLine('no snapshots');
      for (const s of result.snapshots) {
        await printLine(`${s.id.slice(0, 12)}  ${s.time}  store ${s.storeId.slice(0, 8)}  seq ${s.seq}  ${s.mailboxes} mailboxes  ${s.messages} messages  ${formatBytes(s.bytes)}${s.parent ? `  delta on ${s.parent.slice(0, 12)}` : ''}`);
      }
    });
}
