// The public entry point of the mailstore library.
export { Store, uuidString } from './store/store.js';
export type {
  StoreOptions, AppendOptions, AppendResult, MessageInfo, MailboxStatus, MailboxSummary, FlagChange, StoreStats,
  ReadMessagesOptions, MessageWithBody,
} from './store/store.js';
export { MailstoreError, ERROR_CODES, isMailstoreError } from './errors.js';
export type { ErrorCode } from './errors.js';
export type { FileSystem, FileHandle, FileStat, OpenMode } from './fs/filesystem.js';
export { NodeFileSystem, nodeFileSystem } from './fs/node-fs.js';
export { hashBytes, hashHex, hashImplementation } from './hash/blake3.js';
export { limits } from './limits.js';
