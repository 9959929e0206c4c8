// Export: a mailbox out as mbox or Maildir, byte for byte as stored, flags and internal dates kept
// where the format has a place for them. Every message is read verified; a corrupt one is
// reported and left out, never written wrong.
import { join } from 'node:path';
import type { MailstoreError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { nodeFileSystem } from '../fs/node-fs.js';
import { MaildirWriter, maildirPlusPlusFromFolder } from '../formats/maildir.js';
import { MboxWriter, type MboxStyle } from '../formats/mbox.js';
import type { MessageInfo, Store } from '../store/store.js';

export type ExportFormat = 'mbox' | 'maildir';

export interface ExportOptions {
  format: ExportFormat;
  /** mbox: a file that must not exist yet. Maildir: a directory (created; existing mail is kept). */
  out: string;
  /** Maildir: mailboxes below MAILBOX become Maildir++ folders (`.Sent`, `.Lists.kernel`). */
  recursive?: boolean;
  /** mbox: write flags as Status/X-Status headers (changes the message bytes). */
  statusHeaders?: boolean;
  mboxStyle?: MboxStyle;
  fs?: FileSystem;
  shouldStop?: () => boolean;
  onMessage?: (info: MessageInfo) => void;
  onCorrupt?: (mailbox: string, uid: number, error: MailstoreError) => void;
}

export interface ExportSummary {
  format: ExportFormat;
  out: string;
  mailboxes: { mailbox: string; path: string; messages: number }[];
  exported: number;
  bytes: number;
  corrupt: { mailbox: string; uid: number; message: string }[];
  interrupted: boolean;
  seconds: number;
}

interface Target {
  mailbox: string;
  /** Maildir folder directory (mbox: the file). */
  path: string;
}

export async function exportMailbox(store: Store, mailbox: string, options: ExportOptions): Promise<ExportSummary> {
  const started = Date.now();
  const fs = options.fs ?? nodeFileSystem;
  await store.mailbox(mailbox); // NOT_FOUND before anything is written
  const summary: ExportSummary = { format: options.format, out: options.out, mailboxes: [], exported: 0, bytes: 0, corrupt: [], interrupted: false, seconds: 0 };
  const targets = options.format === 'maildir' ? await maildirTargets(store, mailbox, options) : [{ mailbox, path: options.out }];
  if (options.format === 'mbox') {
    const writer = await MboxWriter.create(fs, options.out, { style: options.mboxStyle ?? 'mboxrd', statusHeaders: options.statusHeaders ?? false });
    try {
      await exportMessages(store, targets[0], options, summary, (bytes, info) => writer.append(bytes, { internalDate: info.internalDate, flags: info.flags }));
    } finally {
      await writer.close(); // flushes and fsyncs: an interrupted export is still a valid mbox
    }
  } else {
    for (const target of targets) {
      const writer = await MaildirWriter.create(fs, target.path);
      try {
        await exportMessages(store, target, options, summary, (bytes, info) => writer.append(bytes, { flags: info.flags, internalDate: info.internalDate }));
      } finally {
        await writer.close();
      }
      if (summary.interrupted) break;
    }
  }
  summary.seconds = (Date.now() - started) / 1000;
  return summary;
}

/** The mailbox and (recursively) its descendants, each with its Maildir++ directory; all names checked first. */
async function maildirTargets(store: Store, mailbox: string, options: ExportOptions): Promise<Target[]> {
  const targets: Target[] = [{ mailbox, path: options.out }];
  if (options.recursive === false) return targets;
  for (const child of await store.listMailboxes({ pattern: `${mailbox}/*` })) {
    const folder = child.name.slice(mailbox.length + 1);
    targets.push({ mailbox: child.name, path: join(options.out, maildirPlusPlusFromFolder(folder)) });
  }
  return targets;
}

async function exportMessages(
  store: Store, target: Target, options: ExportOptions, summary: ExportSummary,
  write: (bytes: Buffer, info: MessageInfo) => Promise<unknown>,
): Promise<void> {
  let messages = 0;
  const onCorrupt = (info: MessageInfo, error: MailstoreError) => {
    summary.corrupt.push({ mailbox: target.mailbox, uid: info.uid, message: error.message });
    options.onCorrupt?.(target.mailbox, info.uid, error);
  };
  for await (const { info, body: bytes } of store.readMessages(target.mailbox, { onCorrupt })) {
    if (options.shouldStop?.()) {
      summary.interrupted = true;
      break;
    }
    await write(bytes, info);
    messages++;
    summary.exported++;
    summary.bytes += bytes.length;
    options.onMessage?.(info);
  }
  summary.mailboxes.push({ mailbox: target.mailbox, path: target.path, messages });
}
