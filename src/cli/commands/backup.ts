// `mailstore backup`: one point-in-time snapshot of the store into a repository (created on first
// use); only what the repository does not hold yet is read and copied. `backup check`,
// `backup forget` and `backup repair` are its subcommands (backup-check.ts, backup-forget.ts, backup-repair.ts).
import type { Command } from 'commander';
import type { MailStore } from '../../store/api.js';
import type { ChangeRecord, Op } from '../../store/records.js';
import type { StateChange, StateMessage, StateSince } from '../../store/state-since.js';
import type { Procedures } from '../../daemon/procedures.js';
import type { SessionPart, SessionRead } from '../../daemon/backup-sessions.js';
import { MailstoreError } from '../../errors.js';
import { backupLimits } from '../../limits.js';
import { asBuffer, runBackup, type BackupSource, type BackupSummary } from '../../backup/backup.js';
import { phase, reportPhases } from '../../phases.js';
import { zstdNote } from '../../backup/zstd.js';
import { Store } from '../../store/store.js';
import { REPO_HELP, withRepository } from '../backup-repo.js';
import { absolutePath, printJson, printLine, storeDir, wantsJson, warn, withReadStore } from '../context.js';
import { checkNewRepository } from '../../backup/new-repository.js';
import type { Repository } from '../../backup/repository.js';
import { readBackupRecords, recordBackup, type BackupRecord, type BackupRecords } from '../../store/backup-records.js';
import { enclosingStore } from '../../store/identity.js';
import { nodeFileSystem } from '../../fs/node-fs.js';
import { otherOwnerOfRootsStore } from '../../fs/store-owner.js';
import { bucketUrlOfRepo } from '../../objstore/bucket-url.js';
import { createProgress, formatBytes, type Progress } from '../progress.js';
import * as check from './backup-check.js';
import * as forget from './backup-forget.js';
import * as repair from './backup-repair.js';

export function register(program: Command): void {
  const backup = program
    .command('backup')
    .description('save a point-in-time snapshot of the store into a backup repository (incremental: copies only new messages)')
    .option('--repo <dir>', 'the backup repository (created on first use)')
    .option('--key-file <file>', 'encrypt the repository with this key (needed again for every later command on it)')
    .option('--repo-credentials <file>', 'for an s3: --repo (s3:http://host:port/bucket/prefix): a file holding ACCESS_KEY:SECRET_KEY (else $MAILSTORE_S3_ACCESS_KEY and $MAILSTORE_S3_SECRET_KEY)')
    .option('--new-repository', 'create a new repository at --repo even where this store backed up into another one before, or at a mount point with nothing mounted on it (without it either is refused: a backup disk that did not mount)')
    .option('--whole', 'write a whole snapshot even when a delta on the previous one would do (ends a chain, so forget can remove the older snapshots)')
    .option('--json', 'print the summary as JSON: {snapshot, seq, messages, newBlobs, bytesAdded, durationMs, parent?, deltaDepth?, fullReadReason?, compressionWorkerLost?, damagedIndexFiles?, healed?, unhealed?, ...}')
    .addHelpText('after', `${REPO_HELP}

The snapshot is the store's whole state (mailboxes, uids, uidValidity, flags, dates, modseqs, ACLs)
at one journal seq, taken beside running writers. When the repository holds an earlier snapshot of
the store, only what changed since it is read from the store (the journal after its seq), and the
snapshot file records only that (a delta on the earlier one; at most ${backupLimits.deltaChainMax} in a row, then a whole
snapshot again; forget keeps the snapshots a kept delta builds on). An interrupted run leaves the repository
consistent; the next run reuses what it copied. Earlier snapshots are never changed.

A new repository is made only where none was: the store remembers each repository it backed up
into (its id, path, last snapshot: BACKUPS in the store's directory), and a backup that finds no
repository (a missing or empty directory) where it backed up before is refused (UNMOUNTED), as is
one at or under a mount point /etc/fstab names with nothing mounted on it: the backup disk did not
mount, and a new repository in its empty mount point would fill the disk below it. Mount it and
run again, or pass --new-repository to start a new one there. Another repository at that path (a
rotated backup disk) is fine. A new repository on the store's own file system is warned about.

Exit codes: 0 saved; 2 could not run (locked, disk full, access); 3 refused: the store (or an s3:
repository's bucket) looks unmounted, or the backup disk does (no repository where this store
backed up before, or an empty mount point); 4 no store; 5 invalid (wrong key file, a directory that is
not a repository); 6 a message in the store is damaged (run scrub).`)
    .action(runBackupCommand);
  check.register(backup);
  forget.register(backup);
  repair.register(backup);
}

/** The store as a backup reads it: here, or through the daemon that serves it. */
async function backupSource(store: MailStore): Promise<BackupSource> {
  if (store instanceof Store) {
    return {
      storeId: store.identity.storeId, snapshotState: () => store.maintenance().snapshotState(), fetchBlob: (hash) => store.fetchBlob(hash),
      fetchBlobsAt: (blobs, lend, options) => store.fetchBlobsAt(blobs, lend, options), stateSince: (afterSeq) => store.maintenance().stateSince(afterSeq),
    };
  }
  // loaded only for a daemon: with its node:tls and the scrub module it was a tenth of what a
  // backup loaded before it ran (docs/BACKUP.md, "Where an incremental run goes")
  const { procedures } = await import('../../daemon/procedures.js');
  const remote = procedures(store);
  return {
    storeId: await remote.storeId(),
    fetchBlob: (hash) => remote.fetchBlob(hash),
    fetchBlobsAt: async (blobs, _lend, options) => (await remote.fetchBlobsAt(blobs.map((b) => ({ hash: b.hash, location: b.location })), options)).map((b) => (b ? asBuffer(b) : undefined)),
    stateSince: async (afterSeq) => remoteStateSince(remote, afterSeq),
    snapshotState: async () => {
      const listing = remote.stateOps();
      const first = await listing.next();
      if (first.done || !('appliedSeq' in first.value)) throw new MailstoreError('IO', 'the daemon sent no state for the backup');
      async function* ops(): AsyncGenerator<Op> {
        for await (const item of listing) if ('op' in item) yield item.op;
      }
      return { appliedSeq: first.value.appliedSeq, ops: ops(), close: async () => { await listing.return(undefined); } };
    },
  };
}

/**
 * The store's changes since `afterSeq`, read in a session of the daemon's (daemon/backup-sessions.ts):
 * what its journal said comes first, each range or many-key read is one call; both answers come
 * in pieces (a frame each) and are put together here. The daemon closes a session this process
 * leaves behind when its connection closes (killed), or once it has been idle for a minute (a failed read).
 */
async function remoteStateSince(remote: Procedures, afterSeq: number): Promise<StateSince> {
  let head: Extract<SessionPart, { head: unknown }>['head'] | undefined;
  const mailboxes: StateSince['mailboxes'] = [];
  const touched: StateSince['touched'] = new Map();
  const fresh: StateSince['fresh'] = [];
  for await (const part of remote.stateSinceOpen(afterSeq)) {
    if ('head' in part) head = part.head;
    else if ('mailboxes' in part) mailboxes.push(...part.mailboxes);
    else if ('fresh' in part) for (const blob of part.fresh) fresh.push({ ...blob, hash: asBuffer(blob.hash) });
    else if ('touched' in part) {
      const [key, uids, gone, entries] = part.touched;
      let box = touched.get(key);
      if (!box) touched.set(key, (box = { uids: new Set(), gone: new Set(), entries: [] }));
      for (const uid of uids) box.uids.add(uid);
      for (const uid of gone) box.gone.add(uid);
      box.entries.push(...entries);
    }
  }
  if (!head) throw new MailstoreError('IO', 'the daemon opened no backup session');
  const session = head.session;
  // a read's entries come in pieces (each a frame); `mailbox` its messages, then its change-log entries
  const read = async (method: SessionRead, args: unknown[]): Promise<{ items: unknown[]; messages: unknown[]; changes: unknown[] }> => {
    const out = { items: [] as unknown[], messages: [] as unknown[], changes: [] as unknown[] };
    for await (const part of remote.stateSinceRead(session, method, args)) {
      if ('items' in part) out.items.push(...part.items);
      else if ('messages' in part) out.messages.push(...part.messages);
      else out.changes.push(...part.changes);
    }
    return out;
  };
  const orUndefined = <T>(list: unknown[]) => list.map((v) => (v ?? undefined) as T | undefined);
  return {
    appliedSeq: head.appliedSeq, afterDigest: head.afterDigest, appliedDigest: head.appliedDigest, meta: head.meta, mailboxes, touched, freshBytes: head.freshBytes, fresh,
    changesAfter: async (id, modseq) => (await read('changesAfter', [id, modseq])).items as StateChange[],
    messages: async (id, uids) => orUndefined<StateMessage>((await read('messages', [id, uids])).items),
    changes: async (id, entries) => orUndefined<ChangeRecord>((await read('changes', [id, entries])).items),
    mailbox: async (id) => {
      const whole = await read('mailbox', [id]);
      return { messages: whole.messages as StateMessage[], changes: whole.changes as StateChange[] };
    },
    close: () => remote.stateSinceClose(session),
  };
}

async function runBackupCommand(_options: unknown, command: Command): Promise<void> {
  phase('modules loaded');
  await refuseRepositoryInsideStore(command);
  const { repo: repoOption, newRepository } = command.opts<{ repo?: string; newRepository?: boolean }>();
  // The store first: a mistyped store path must not leave a new, empty repository behind.
  const summary = await withReadStore(command, async (store) => {
    const records = await backupRecordsOf(store);
    const location = repoOption === undefined || bucketUrlOfRepo(repoOption) !== undefined ? repoOption ?? '' : absolutePath(repoOption);
    let warning: string | undefined; // given once the repository is made: a refusal of initRepository's own makes none
    const beforeCreate = async () => {
      // --new-repository asks for no record: a daemon too old to give them does not stop it
      const known = newRepository ? { records: [] } : await records.read();
      warning = await checkNewRepository(nodeFileSystem, {
        location, localDir: location.startsWith('/') ? location : undefined, storeRoot: storeDir(command), records: known, allowNew: Boolean(newRepository),
      });
    };
    return withRepository(command, beforeCreate, async (repo) => {
      if (repo.created && warning) warn(warning);
      const saved = await backupInto(command, store, repo);
      await records.record({ id: repo.config.id, path: location, snapshot: saved.snapshot, time: Date.now() }).catch((error: unknown) => {
        warn(`the backup is saved, but the store could not record it (${error instanceof Error ? error.message : String(error)}): ` +
          `a later backup that finds no repository at ${location} (its disk not mounted) cannot tell it from a new place`);
      });
      return saved;
    });
  });
  phase('closed');
  reportPhases();
  if (summary.damagedIndexFiles) {
    warn(`${summary.damagedIndexFiles.length} index files of the repository are damaged (${summary.damagedIndexFiles.map((n) => n.slice(0, 12)).join(', ')}): ` +
      "a restore finds the blobs they listed by scanning the data files; run 'mailstore backup repair' to write their index again");
  }
  if (wantsJson(command)) return printJson(summary);
  await printLine(describe(summary));
}

/**
 * The store's record of the repositories it was backed up into (BACKUPS): here, or through the
 * daemon that serves it, which writes it as it serves the backup (a file of the store's owner).
 * Root backing up a store another user owns opens it read-only (context.ts: root's files there
 * would lock its daemon out) and writes this one file as that user's, so root's nightly job is
 * recorded too.
 */
async function backupRecordsOf(store: MailStore): Promise<{ read: () => Promise<BackupRecords>; record: (record: BackupRecord) => Promise<void> }> {
  if (store instanceof Store) {
    const owner = store.readOnly && process.env.MAILSTORE_ALLOW_ROOT !== '1' ? otherOwnerOfRootsStore(store.root) : undefined;
    return { read: () => readBackupRecords(store.fs, store.root), record: (record) => recordBackup(store, record, owner) };
  }
  const { procedures } = await import('../../daemon/procedures.js');
  const remote = procedures(store);
  return { read: () => remote.backupRecords(), record: (record) => remote.recordBackup(record) };
}

async function backupInto(command: Command, store: MailStore, repo: Repository): Promise<BackupSummary> {
  phase('store and repository opened');
  if (repo.config.version >= 3 && zstdNote) warn(zstdNote); // Brotli instead: slower, never a failure
  let progress: Progress | undefined;
  let done = { blobs: 0, bytes: 0 };
  return runBackup(await backupSource(store), repo, {
    whole: Boolean(command.opts<{ whole?: boolean }>().whole),
    // the copy may have begun before the plan (the journal's new blobs, a new repository's): counted from what it did already
    onPlan: (blobs, bytes) => { progress = createProgress('backup', { messages: blobs, bytes }); progress.advance(done.blobs, done.bytes); },
    onProgress: (blobs, bytes) => {
      progress?.advance(blobs - done.blobs, bytes - done.bytes);
      done = { blobs, bytes };
    },
  }).finally(() => progress?.finish());
}

/**
 * A repository inside a store's directory (the one backed up, or another on the host) was taken:
 * a backup lost with that store's disk, a mistaken rm -rf of it or its move to a new directory, and
 * copied along with every copy of the store. Refused before anything is written; what is in such
 * a repository is still read (backups, restore, check).
 */
async function refuseRepositoryInsideStore(command: Command): Promise<void> {
  const { repo } = command.opts<{ repo?: string }>();
  if (repo === undefined || bucketUrlOfRepo(repo) !== undefined) return;
  const dir = absolutePath(repo);
  const enclosing = await enclosingStore(nodeFileSystem, dir);
  if (!enclosing) return;
  throw new MailstoreError('INVALID', `the repository ${dir} is inside the store at ${enclosing.root} (under its ${enclosing.entry}/): a backup there is lost with the store ` +
    `(its disk, a mistaken rm -rf, a move to a new directory) and copied with it; give a directory on another disk or host. Nothing was written.`, { path: dir });
}

function describe(s: BackupSummary): string {
  return `snapshot ${s.snapshot.slice(0, 12)} saved: ${s.messages} messages in ${s.mailboxes} mailboxes at seq ${s.seq}; ` +
    `${s.newBlobs} of ${s.blobs} blobs new (${formatBytes(s.bytesRead)} read), ${formatBytes(s.bytesAdded)} added to the repository in ${(s.durationMs / 1000).toFixed(1)} s` +
    (s.parent ? `; the changes since snapshot ${s.parent.slice(0, 12)} read${s.deltaDepth ? ` and saved as a delta on it (${s.deltaDepth} deep)` : ''}` : s.fullReadReason ? `; the whole state read (${s.fullReadReason})` : '') +
    (s.compressionWorkerLost ? `; a compression worker failed (${s.compressionWorkerLost}), the rest was compressed in the main thread` : '') +
    (s.healed !== undefined ? `; healed ${s.healed} of ${s.healed + s.unhealed!} blobs 'backup repair' found damaged or missing (copied again from the store)` +
      (s.unhealed ? `, ${s.unhealed} not: the store no longer has them (they stay listed; the snapshots that need them still cannot restore those messages)` : '') : '');
}
