// The Store's public API as an interface, so that a server can hold either a Store (in-process)
// or a Client of the daemon (src/client/client.ts) and swap one for the other: both implement it,
// and the compiler checks that they do. The CLI's commands are written against it too.
import type { Readable } from 'node:stream';
import type {
  AppendOptions, AppendResult, Changes, ChangesSincePart, FlagChange, MailboxStatus, MailboxSummary, MessageInfo, MessageWithBody, ReadMessagesOptions, StoreStats,
} from './types.js';
import type { DeleteUserResult, RenameUserResult } from './users.js';
import type { MovedUser } from './moved.js';
import type { ClockReport } from './clock-report.js';
import type { DeleteOptions } from './validate.js';
import type { CommitChain } from './writer.js';

export type { CommitChain };

/** appendBatch's `meta`: a value stored with the batch, and what the key must hold for it to commit. */
export interface AppendBatchMeta {
  key: string;
  value: unknown;
  expected?: unknown;
}

/** One message of appendBatch: its bytes and per-message options. */
export type AppendBatchItem = AppendOptions & { bytes: Uint8Array };

export interface AppendBatchOptions {
  /**
   * Stored in the same journal record as the messages (an import's resume cursor). With
   * `expected` (null: no value), the batch commits only while the key still holds that value, else
   * it is REFUSED and nothing of it is written: two runs of one import cannot both add a batch.
   */
  meta?: AppendBatchMeta;
  /** Batches given the same chain commit in call order, each only if every earlier one did. */
  chain?: CommitChain;
  /**
   * The id of the mailbox the caller made or opened (MailboxSummary.id): the batch commits only
   * while the name still names that mailbox, else NOT_FOUND and nothing is written. A restore into a
   * live store fills the mailbox it created batch by batch; renamed away meanwhile and a new one made
   * under the name, the rest of the restore went into that one.
   */
  mailboxId?: string;
}

export interface MailStore {
  createMailbox(name: string, options?: { owner?: string; acl?: Record<string, string> }): Promise<MailboxSummary>;
  renameMailbox(from: string, to: string): Promise<{ renamed: number }>;
  /** `ifEmpty`: REFUSED when it holds messages, decided in the delete's own batch. */
  deleteMailbox(name: string, options?: DeleteOptions): Promise<{ messages: number }>;
  listMailboxes(options?: { user?: string; pattern?: string }): Promise<{ name: string; id: string; rights?: string }[]>;
  mailbox(name: string): Promise<MailboxSummary>;
  status(name: string): Promise<MailboxStatus>;
  setAcl(mailbox: string, identifier: string, rights: string): Promise<void>;
  getAcl(mailbox: string): Promise<Record<string, string>>;
  append(mailbox: string, bytes: Uint8Array, options?: AppendOptions): Promise<AppendResult>;
  appendBatch(mailbox: string, items: AppendBatchItem[], options?: AppendBatchOptions): Promise<AppendResult[]>;
  getMeta<T>(key: string): Promise<T | undefined>;
  setFlags(mailbox: string, uids: number | number[], change: FlagChange): Promise<{ modseq: number; updated: number[]; modified: number[] }>;
  /** `mailboxId`: only while the name still names that mailbox (the one listed), else NOT_FOUND, nothing expunged. */
  expunge(mailbox: string, uids: number | number[], options?: { unchangedSince?: number; mailboxId?: string }): Promise<{ expunged: number[]; modseq: number; modified?: number[] }>;
  /** `mailboxId`: only while FROM still names that mailbox (the one the uids were read from), else NOT_FOUND, nothing done. */
  copy(from: string, uids: number | number[], to: string, options?: { mailboxId?: string }): Promise<{ uidValidity: number; mapping: [number, number][] }>;
  move(from: string, uids: number | number[], to: string, options?: { mailboxId?: string }): Promise<{ uidValidity: number; mapping: [number, number][] }>;
  stats(): Promise<StoreStats>;
  messageInfo(mailbox: string, uid: number): Promise<MessageInfo>;
  messages(mailbox: string, options?: { fromUid?: number }): AsyncGenerator<MessageInfo>;
  fetch(mailbox: string, uid: number): Promise<Buffer>;
  readMessages(mailbox: string, options?: ReadMessagesOptions): AsyncGenerator<MessageWithBody>;
  fetchStream(mailbox: string, uid: number): Promise<Readable>;
  changesSince(mailbox: string, modseq: number): Promise<Changes>;
  /**
   * changesSince as parts (ChangesSincePart: the head, vanished uids, vanished ranges, changed
   * messages, in pieces): a server writes each out as it comes and never holds the whole answer,
   * which for QRESYNC from 0 of a 1M-message mailbox was 651 MB. The same answer as changesSince.
   */
  changesSinceParts(mailbox: string, modseq: number): AsyncGenerator<ChangesSincePart>;
  renameUser(from: string, to: string): Promise<RenameUserResult>;
  deleteUser(name: string, options?: DeleteOptions): Promise<DeleteUserResult>;
  /** The users XFER moved away from here, and where to (their mail is refused MOVED). */
  movedUsers(): Promise<MovedUser[]>;
  /** Removes a moved user's marker (NOT_FOUND when there is none). */
  forgetMovedUser(name: string): Promise<MovedUser>;
  /** The system clock as the store judges it (clock.ts); retention refuses while `untrusted` says why. */
  clockReport(): Promise<ClockReport>;
  /** The admin's word that the system clock is right now. */
  trustClock(): Promise<ClockReport>;
  close(): Promise<void>;
}
