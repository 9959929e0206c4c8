// What every command shares: where the store is, opening and always closing it, and writing
// results for people (plain lines) or scripts (--json) without losing bytes on a pipe.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { MailstoreError } from '../errors.js';
import { limits } from '../limits.js';
import { Store, type StoreOptions } from '../store/store.js';
import { normalizeDate, parseDateText } from '../store/validate.js';

export const DEFAULT_STORE_DIR = './mailstore-data';

/** --store DIR, else $MAILSTORE_DIR, else ./mailstore-data; always absolute. */
export function storeDir(command: Command): string {
  const option = command.optsWithGlobals().store as string | undefined;
  return resolve(option ?? process.env.MAILSTORE_DIR ?? DEFAULT_STORE_DIR);
}

/** Opens the store, runs `work`, and closes the store whatever happened (the lock must go). */
export async function withStore<T>(command: Command, work: (store: Store) => Promise<T>, options: StoreOptions = {}): Promise<T> {
  const store = await Store.open(storeDir(command), options);
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

export function wantsJson(command: Command): boolean {
  return Boolean(command.optsWithGlobals().json);
}

/** One JSON document on stdout (Dates as ISO strings). */
export function printJson(value: unknown): Promise<void> {
  return writeStdout(Buffer.from(JSON.stringify(value, null, 2) + '\n'));
}

export function printLine(text: string): Promise<void> {
  return writeStdout(Buffer.from(text + '\n'));
}

/** Resolves once the bytes are handed to the OS, so exiting afterwards cannot cut them off. */
export function writeStdout(bytes: Buffer): Promise<void> {
  return new Promise((done, failed) => {
    process.stdout.write(bytes, (error) => (error ? failed(error) : done()));
  });
}

/** A warning for the person at the terminal; never on stdout, which scripts read. */
export function warn(text: string): void {
  process.stderr.write(`mailstore: ${text}\n`);
}

/** Reads all of stdin (append -), refusing more than the message limit rather than buffering without end. */
export async function readStdin(bytesMax: number = limits.messageBytesMax): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of process.stdin) {
    const piece = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    total += piece.length;
    if (total > bytesMax) throw new MailstoreError('TOO_LARGE', `message on stdin exceeds the limit of ${bytesMax} bytes`);
    chunks.push(piece);
  }
  return Buffer.concat(chunks, total);
}

/** `--flags '\Seen,\Flagged'` or `--flags '\Seen \Flagged'`: a list of flags (validated by the store). */
export function parseFlagList(text: string | undefined): string[] {
  if (text === undefined) return [];
  return text.split(/[\s,]+/).filter((flag) => flag.length > 0);
}

/**
 * `--date`: ISO 8601, RFC 5322 or seconds since the epoch; a real calendar date within the store's
 * bounds (the library's own reader: Date.parse turned 2024-02-30 into March 1 and -1 into 2001).
 */
export function parseDateOption(text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;
  const ms = /^\d{1,15}$/.test(text) ? Number(text) * 1000 : parseDateText(text);
  if (!Number.isFinite(ms)) throw new MailstoreError('INVALID', `cannot read the date ${JSON.stringify(text)} (use ISO 8601, RFC 5322 or epoch seconds; a real calendar date)`);
  return new Date(normalizeDate(ms));
}

/** A positive integer option (`--batch-messages 500`). */
export function parsePositiveInteger(name: string): (text: string) => number {
  return (text: string) => {
    if (!/^[1-9][0-9]*$/.test(text)) throw new MailstoreError('INVALID', `${name} must be a positive integer, got ${JSON.stringify(text)}`);
    return Number(text);
  };
}

/** A UID argument: 1..2^32-1. */
export function parseUid(text: string): number {
  if (!/^[1-9][0-9]*$/.test(text) || Number(text) > 0xffffffff) throw new MailstoreError('INVALID', `not a UID: ${JSON.stringify(text)}`);
  return Number(text);
}
