// A user's corpus made ready for the side-by-side benchmark: any source `mailstore import` reads
// (mbox, Maildir(++) tree, directory of .eml files, public-inbox archive) streamed once into
// what every peer takes: one file per message (a Maildir: delivery, git, b3sum), the list of
// those files and one mbox (bulk imports of mailstore and Dovecot) — the layout
// tools/bench/peers/corpus.mjs makes, so the peer scripts take it as is. One message in memory at
// a time; a checkpoint every few thousand messages lets an interrupted preparation resume.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { MailstoreError } from '../errors.js';
import type { FileHandle, FileSystem } from '../fs/filesystem.js';
import { writeFileDurable } from '../fs/durable.js';
import { nodeFileSystem } from '../fs/node-fs.js';
import type { MailFormat } from '../formats/detect.js';
import { benchLimits } from '../limits.js';
import { openSource, type SourceMessage } from '../import/sources.js';
import { makeDirectories, readText, removeTree } from './files.js';

export interface PrepareOptions {
  format?: MailFormat;
  /** Only the first N messages of the corpus. */
  messagesMax?: number;
  fs?: FileSystem;
  /** Before the first message: how many the source holds, when cheap to know (Maildir, .eml file), for a progress meter. */
  onStart?: (estimatedMessages: number | undefined) => void;
  /** Each message written (for a progress meter). */
  onMessage?: (bytes: number, fraction?: number) => void;
  /** An entry of the source left out (unreadable, too large): the benchmark goes on without it. */
  onSkip?: (path: string, why: string) => void;
  /** Checked after each message: true stops at the next checkpoint (what was written stays). */
  shouldStop?: () => boolean;
}

export interface PreparedCorpus {
  /** The one-message files (a Maildir: cur/); the peers' CORPUS. */
  maildir: string;
  /** The peers' WORKDIR: corpus/ (list.txt, corpus.mbox, stats.env) is below it. */
  work: string;
  list: string;
  mbox: string;
  format: MailFormat;
  messages: number;
  bytes: number;
  mboxBytes: number;
  duplicates: number;
  /** Duplicates were counted among the first benchLimits.duplicatesTrackedMax distinct messages only. */
  duplicatesCapped: boolean;
  skipped: number;
  /** Messages a previous, interrupted preparation had written. */
  resumedAt: number;
  /** Prepared whole by an earlier run (same corpus, same --messages) and used as it was. */
  reused: boolean;
  complete: boolean;
}

interface Checkpoint {
  version: 1;
  source: string;
  format: MailFormat;
  messagesMax: number | null;
  messages: number;
  bytes: number;
  listBytes: number;
  mboxBytes: number;
  duplicates: number;
  skipped: number;
  /** SHA-256 of the last message written: the source must still hold it there on resume. */
  lastHash: string;
  complete: boolean;
}

const MBOX_FROM_LINE = Buffer.from('From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n');

/** The path with every symbolic link resolved, as the peer scripts (readlink -f) name it. */
function realPath(path: string): string {
  const r = spawnSync('readlink', ['-f', '--', path], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : path;
}

/** Prepares (or resumes preparing, or reuses) the corpus at `source` under `work`. */
export async function prepareCorpus(source: string, work: string, options: PrepareOptions = {}): Promise<PreparedCorpus> {
  const fs = options.fs ?? nodeFileSystem;
  const paths = { maildir: join(work, 'maildir'), corpus: join(work, 'corpus') };
  const files = { list: join(paths.corpus, 'list.txt'), mbox: join(paths.corpus, 'corpus.mbox'), stats: join(paths.corpus, 'stats.env'), checkpoint: join(paths.corpus, 'prepare.json') };
  const opened = await openSource(fs, source, { format: options.format }, (path, error) => {
    options.onSkip?.(path, `${error.code}: ${error.message}`);
  });
  let checkpoint = await loadCheckpoint(fs, files.checkpoint);
  const matches = checkpoint && checkpoint.source === source && checkpoint.format === opened.format && checkpoint.messagesMax === (options.messagesMax ?? null);
  if (!matches) {
    await removeTree(paths.maildir, fs);
    await removeTree(paths.corpus, fs);
    checkpoint = undefined;
  }
  if (checkpoint?.complete && (await readText(files.stats, fs))) return { ...result(paths, files, checkpoint, 0), reused: true };
  for (const dir of [paths.corpus, join(paths.maildir, 'cur'), join(paths.maildir, 'new'), join(paths.maildir, 'tmp')]) await makeDirectories(dir, fs);
  const state: Checkpoint = checkpoint ?? {
    version: 1, source, format: opened.format, messagesMax: options.messagesMax ?? null, messages: 0, bytes: 0, listBytes: 0, mboxBytes: 0,
    duplicates: 0, skipped: 0, lastHash: '', complete: false,
  };
  const resumedAt = state.messages;
  const estimates = opened.folders.map((f) => f.estimatedMessages);
  const estimate = estimates.every((n) => n !== undefined) ? estimates.reduce((a, b) => a! + b!, 0)! : undefined;
  options.onStart?.(options.messagesMax !== undefined && estimate !== undefined ? Math.min(estimate, options.messagesMax) : estimate);
  const writer = await CorpusWriter.open(fs, paths.maildir, files, state);
  try {
    await writer.seenFromFiles(resumedAt);
    let index = 0;
    const skipping = (path: string, why: string) => { state.skipped++; options.onSkip?.(path, why); };
    outer: for (const folder of opened.folders) {
      for await (const message of folder.messages((path, error) => skipping(path, `${error.code}: ${error.message}`))) {
        if (index < resumedAt) {
          if (index === resumedAt - 1 && sha256(message.bytes) !== state.lastHash) {
            throw new MailstoreError('REFUSED', `${source} changed since its preparation began (message ${resumedAt} is not the one written before); remove ${work} and run again`, { path: work });
          }
          index++;
          continue;
        }
        if (options.messagesMax !== undefined && index >= options.messagesMax) break outer;
        await writer.add(message);
        index++;
        options.onMessage?.(message.bytes.length, message.fraction);
        if (writer.due()) await writer.checkpoint(false);
        if (options.shouldStop?.()) {
          await writer.checkpoint(false);
          return result(paths, files, state, resumedAt);
        }
      }
    }
    if (state.messages === 0) throw new MailstoreError('INVALID', `${source} holds no message to benchmark with`, { path: source });
    await writer.checkpoint(true);
    const stamp = `CORPUS=${JSON.stringify(realPath(paths.maildir))}\nMESSAGES=${state.messages}\nBYTES=${state.bytes}\nMBOX_BYTES=${state.mboxBytes}\n`;
    await writeFileDurable(fs, files.stats, Buffer.from(stamp));
    // the peers read these as their own unprivileged users (Dovecot's mail user, cyrus)
    spawnSync('chmod', ['-R', 'o+rX', paths.maildir, paths.corpus]);
    return result(paths, files, state, resumedAt);
  } finally {
    await writer.close();
  }
}

function result(paths: { maildir: string; corpus: string }, files: { list: string; mbox: string }, state: Checkpoint, resumedAt: number): PreparedCorpus {
  return {
    maildir: paths.maildir, work: join(paths.corpus, '..'), list: files.list, mbox: files.mbox, format: state.format,
    messages: state.messages, bytes: state.bytes, mboxBytes: state.mboxBytes, duplicates: state.duplicates,
    duplicatesCapped: state.messages - state.duplicates > benchLimits.duplicatesTrackedMax, skipped: state.skipped, resumedAt, complete: state.complete, reused: false,
  };
}

async function loadCheckpoint(fs: FileSystem, path: string): Promise<Checkpoint | undefined> {
  const text = await readText(path, fs);
  if (!text) return undefined;
  try {
    const value = JSON.parse(text) as Checkpoint;
    return value.version === 1 && typeof value.messages === 'number' ? value : undefined;
  } catch {
    return undefined; // a torn checkpoint: start over
  }
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Message file name: its number, so name order is corpus order (as corpus.mjs lists a Maildir). */
function fileName(n: number): string {
  return `${String(n).padStart(9, '0')}:2,`;
}

/** Quotes /^>*From / lines with one more '>' (mboxrd), as corpus.mjs writes a Maildir's mbox. */
function mboxEntry(bytes: Buffer): Buffer {
  const text = bytes.toString('latin1').replace(/^(>*From )/gm, '>$1');
  return Buffer.concat([MBOX_FROM_LINE, Buffer.from(text.endsWith('\n') ? text : `${text}\n`, 'latin1'), Buffer.from('\n')]);
}

/** Appends messages to the Maildir, list and mbox; a checkpoint says how far they are good. */
class CorpusWriter {
  private seen = new Set<string>();
  private sinceCheckpoint = { messages: 0, bytes: 0 };

  private constructor(
    private readonly fs: FileSystem, private readonly maildir: string, private readonly checkpointPath: string,
    private readonly list: FileHandle, private readonly mbox: FileHandle, private readonly state: Checkpoint,
  ) {}

  static async open(fs: FileSystem, maildir: string, files: { list: string; mbox: string; checkpoint: string }, state: Checkpoint): Promise<CorpusWriter> {
    const list = await fs.open(files.list, 'createOrOpen');
    const mbox = await fs.open(files.mbox, 'createOrOpen');
    // what was written after the last checkpoint is written again
    await list.truncate(state.listBytes);
    await mbox.truncate(state.mboxBytes);
    return new CorpusWriter(fs, maildir, files.checkpoint, list, mbox, state);
  }

  /** The duplicate count goes on from where it was: the messages already written are hashed again. */
  async seenFromFiles(count: number): Promise<void> {
    for (let n = 1; n <= count && this.seen.size < benchLimits.duplicatesTrackedMax; n++) {
      this.seen.add(sha256(await this.fs.readFile(join(this.maildir, 'cur', fileName(n)))).slice(0, 32));
    }
  }

  async add(message: SourceMessage): Promise<void> {
    const state = this.state;
    const n = state.messages + 1;
    const path = join(this.maildir, 'cur', fileName(n));
    const file = await this.fs.open(path, 'createOrOpen');
    try {
      await file.truncate(0);
      await file.write(message.bytes, 0);
    } finally {
      await file.close();
    }
    const hash = sha256(message.bytes);
    const key = hash.slice(0, 32);
    if (this.seen.has(key)) state.duplicates++;
    else if (this.seen.size < benchLimits.duplicatesTrackedMax) this.seen.add(key);
    const line = Buffer.from(`${path}\n`);
    await this.list.write(line, state.listBytes);
    const entry = mboxEntry(message.bytes);
    await this.mbox.write(entry, state.mboxBytes);
    state.listBytes += line.length;
    state.mboxBytes += entry.length;
    state.messages = n;
    state.bytes += message.bytes.length;
    state.lastHash = hash;
    this.sinceCheckpoint.messages++;
    this.sinceCheckpoint.bytes += message.bytes.length;
  }

  due(): boolean {
    return this.sinceCheckpoint.messages >= benchLimits.prepareCheckpointMessages || this.sinceCheckpoint.bytes >= benchLimits.prepareCheckpointBytes;
  }

  /** The list and mbox synced first, then the checkpoint that vouches for them. */
  async checkpoint(complete: boolean): Promise<void> {
    await this.list.sync();
    await this.mbox.sync();
    this.state.complete = complete;
    await writeFileDurable(this.fs, this.checkpointPath, Buffer.from(JSON.stringify(this.state)));
    this.sinceCheckpoint = { messages: 0, bytes: 0 };
  }

  async close(): Promise<void> {
    await this.list.close();
    await this.mbox.close();
  }
}
