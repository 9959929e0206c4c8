// `mailstore rebuild-from-bucket`: the local disk of a store with an object store was lost, the
// bucket is intact (RECOVERY.md). Assembles a new store in --store DIR from a copy of the lost
// store's journal and the bucket (src/store/rebuild-from-bucket.ts), then says what came back
// and what was lost.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { nodeFileSystem } from '../../fs/node-fs.js';
import { rebuildFromBucket, type RebuildFromBucketResult } from '../../store/rebuild-from-bucket.js';
import { absolutePath, printJson, printLine, storeDir, wantsJson } from '../context.js';
import { createProgress } from '../progress.js';

export function register(program: Command): void {
  program
    .command('rebuild-from-bucket')
    .description('after losing the local disk of a store with an object store: a new store (in --store DIR, empty) from a copy of its journal and its bucket')
    .requiredOption('--journal-copy <dir>', "a directory holding the lost store's STORE and journal/ (and snapshots/ if any): a file copy of them, or a replica's")
    .requiredOption('--object-store <url>', 'the lost store\'s bucket URL, as given to init (http://host:port/bucket[/prefix])')
    .option('--object-store-credentials <file>', 'a file holding ACCESS_KEY:SECRET_KEY (else $MAILSTORE_S3_ACCESS_KEY and $MAILSTORE_S3_SECRET_KEY)')
    .option('--json', 'print the result as JSON (messages recovered and lost, with mailbox and UID, packs lost, scrub summary)')
    .addHelpText('after', `
What it does: checks the bucket answers; copies STORE, journal/ and snapshots/ from the copy into
the new directory (missing or empty, else EXISTS), with an empty packs/ and the object-store
settings; opens it (the index is rebuilt from the journal); scrubs it, which reads every pack in
the bucket and re-hashes every message; records the packs that were neither in the bucket nor
anywhere else (they were on the lost disk) so no new pack takes their numbers. The store keeps
the old store id, so the objects' keys (PREFIX/STORE-ID/packs/…) are found. A REBUILDING marker
is written first and removed last: if a run stops part-way (a crash, the bucket gone mid-scrub),
every other command refuses the directory (exit 3); run this command again, it starts over.

Mail in packs that had moved to the bucket comes back exact. Mail whose pack had not moved yet
(the newest, by default up to 10 % of the bytes) was on the lost disk: those messages stay in
their mailboxes and are reported (here, and by every 'mailstore scrub': blob-missing, exit 1);
fetching one is CORRUPT. Nothing is dropped: put a copy of their bodies back with
'mailstore scrub --repair --source COPY' when one turns up (a backup, an older copy of packs/;
add --force when over a quarter of the messages are missing, which repair otherwise refuses).
Changes after the journal copy was taken are lost. The old REPLICATION, consumers and settings
other than the object store are not carried over: set them again.

Exit codes: 0 every message came back; 1 the store was rebuilt and some messages are lost (listed);
2 could not run (IO, ACCESS); 3 the bucket is missing (UNMOUNTED); 4 the journal copy is
incomplete (NOT_FOUND); 5 the target is not empty (EXISTS) or invalid options.`)
    .action(async (options: { journalCopy: string; objectStore: string; objectStoreCredentials?: string }, command: Command) => {
      const target = storeDir(command);
      const settings = { url: options.objectStore, ...(options.objectStoreCredentials ? { credentials: absolutePath(options.objectStoreCredentials) } : {}) };
      const progress = wantsJson(command) ? undefined : createProgress('verifying the bucket');
      const result = await rebuildFromBucket(target, {
        journalCopy: absolutePath(options.journalCopy), settings, fs: nodeFileSystem,
        onProgress: progress && ((p) => progress.position(p.bytesDone, Math.max(p.bytesTotal, 1))),
      }).finally(() => progress?.finish());
      if (wantsJson(command)) await printJson({ path: target, ...result });
      else await printResult(target, result);
      if (result.messagesLost > 0) process.exitCode = 1;
    });
}

async function printResult(target: string, r: RebuildFromBucketResult): Promise<void> {
  await printLine(`rebuilt store ${r.storeId} at ${target}: ${r.messages} messages, ${r.messagesRecovered} read back from the bucket (${r.packsInBucket} packs, verified)`);
  if (r.messagesLost === 0) return;
  await printLine(`${r.messagesLost} messages were in packs that never moved (${r.packsLost.join(', ') || 'damaged objects'}): lost with the disk, still listed, reported by scrub`);
  for (const ref of r.lost.slice(0, 50)) await printLine(`  lost: ${ref.mailbox} UID ${ref.uid}`);
  if (r.messagesLost > 50) await printLine(`  … and ${r.messagesLost - 50} more (--json lists up to 1000; 'mailstore scrub' lists all)`);
}
