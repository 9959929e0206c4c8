// The public entry point of the mailstore library.
export { Store, uuidString } from './store/store.js';
export type {
  StoreOptions, AppendOptions, AppendResult, MessageInfo, MailboxStatus, MailboxSummary, Changes, FlagChange, StoreStats,
  ReadMessagesOptions, MessageWithBody,
} from './store/types.js';
export { MailstoreError, ERROR_CODES, isMailstoreError } from './errors.js';
export type { ErrorCode } from './errors.js';
export type { FileSystem, FileHandle, FileStat, OpenMode } from './fs/filesystem.js';
export { NodeFileSystem, nodeFileSystem } from './fs/node-fs.js';
export { hashBytes, hashHex, hashImplementation } from './hash/blake3.js';
export { limits } from './limits.js';
export { favourMainThread, HELPER_NICE_STEPS } from './thread-priority.js';
// Day-2 administration (issue 18): each takes an open Store.
export type { RenameUserResult, DeleteUserResult } from './store/users.js';
export { deleteMailboxTree } from './store/users.js';
export { setQuota, changeQuota, getQuota, listQuotas } from './store/quota.js';
export type { QuotaChange, QuotaLimits, QuotaReport } from './store/quota.js';
export { usage } from './store/usage.js';
export type { UserUsage } from './store/usage.js';
export { searchMailbox } from './store/search.js';
export type { SearchCriteria } from './store/search.js';
export { expungeBefore } from './store/retention.js';
export type { RetentionOptions, RetentionResult } from './store/retention.js';
export { dumpMailboxes, undumpMailboxes, formatDumpLine, parseDumpLine } from './store/mailbox-list.js';
export type { DumpedMailbox } from './store/mailbox-list.js';
// Change events (RFC 5423 names) from the journal, and the webhook consumer (issue 13).
export { readEvents, EventContext, lagRecords } from './events/events.js';
export type { MailEvent, EventName } from './events/events.js';
export { parseCursor, formatCursor } from './events/cursor.js';
export type { EventCursor } from './events/cursor.js';
export { followEvents, ChangeSignal } from './events/follow.js';
export { postEvents, consumerCursor, consumerKey, WEBHOOK_CONSUMER } from './events/webhook.js';
export type { WebhookOptions, WebhookResult } from './events/webhook.js';
// Backup repositories (issue 14, docs/BACKUP.md): each takes a Repository and a store-side interface.
export { Repository, lockRepository } from './backup/repository.js';
export type { RepoConfig, SnapshotFile, SnapshotCounts, OpenRepositoryOptions } from './backup/repository.js';
export { runBackup } from './backup/backup.js';
export type { BackupSource, BackupOptions, BackupSummary } from './backup/backup.js';
export { restoreToNewStore, restoreIntoStore } from './backup/restore.js';
export type { RestoreSelection, RestoreSummary, RestoreOptions, RestoreTarget } from './backup/restore.js';
export { checkRepository } from './backup/check.js';
export type { BackupFinding, BackupFindingKind, BackupCheckReport } from './backup/check.js';
export { forgetSnapshots, applyPolicy } from './backup/forget.js';
export type { RetentionPolicy, ForgetSummary, PruneSummary } from './backup/forget.js';
