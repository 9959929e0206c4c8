// IMAP SEARCH's common keys over one mailbox (doveadm search): index-only keys (dates, sizes,
// flags, uids) are decided from the message records; header keys read each remaining candidate's
// bytes through readMessages (verified against the hash) and look at its header section only.
import { decodeEncodedWords } from '../formats/encoded-words.js';
import { limits } from '../limits.js';
import type { MailStore } from './api.js';
import type { MessageInfo } from './store.js';
import { MailstoreError } from '../errors.js';
import { checkArray, checkCount, checkObject, checkOptions, checkString, hasFlag, normalizeFlags, normalizeUids } from './validate.js';

export interface SearchCriteria {
  uids?: number[];
  /** Internal date before this day/time (IMAP BEFORE). */
  before?: Date;
  /** Internal date at or after this (IMAP SINCE). */
  since?: Date;
  larger?: number;
  smaller?: number;
  flags?: string[];
  noFlags?: string[];
  /** Header NAME contains VALUE (case-insensitive); an empty VALUE asks only that the header is present. */
  headers?: [name: string, value: string][];
}

function matchesIndex(info: MessageInfo, c: SearchCriteria, uids: Set<number> | undefined, flags: string[], noFlags: string[]): boolean {
  if (uids && !uids.has(info.uid)) return false;
  const ms = info.internalDate.getTime();
  if (c.before && !(ms < c.before.getTime())) return false;
  if (c.since && !(ms >= c.since.getTime())) return false;
  if (c.larger !== undefined && !(info.size > c.larger)) return false;
  if (c.smaller !== undefined && !(info.size < c.smaller)) return false;
  if (flags.some((f) => !hasFlag(info.flags, f))) return false;
  if (noFlags.some((f) => hasFlag(info.flags, f))) return false;
  return true;
}

/** The messages of `mailbox` that match every criterion, in uid order. */
export async function searchMailbox(store: MailStore, mailbox: string, criteria: SearchCriteria): Promise<MessageInfo[]> {
  const out: MessageInfo[] = [];
  for await (const info of searchMessages(store, mailbox, criteria)) out.push(info);
  return out;
}

/**
 * searchMailbox one message at a time, as found: the CLI prints each as it comes (a SINCE over 1M
 * messages held every match's record). A header key keeps only the uids the index keys let
 * through (numbers), then reads those messages' bytes, the matches' records from that read.
 */
export async function* searchMessages(store: MailStore, mailbox: string, criteria: SearchCriteria): AsyncGenerator<MessageInfo> {
  checkCriteria(criteria);
  const flags = normalizeFlags(criteria.flags);
  const noFlags = normalizeFlags(criteria.noFlags);
  const uids = criteria.uids ? new Set(criteria.uids) : undefined;
  const wanted = criteria.headers ?? [];
  if (wanted.length === 0) {
    for await (const info of store.messages(mailbox)) if (matchesIndex(info, criteria, uids, flags, noFlags)) yield info;
    return;
  }
  const candidates: number[] = [];
  for await (const info of store.messages(mailbox)) if (matchesIndex(info, criteria, uids, flags, noFlags)) candidates.push(info.uid);
  if (candidates.length === 0) return;
  let next = 0; // the first candidate not yet read: both lists ascend
  // lent: a body is only parsed before the next one is asked for
  for await (const { info, body } of store.readMessages(mailbox, { fromUid: candidates[0], lendBodies: true })) {
    while (next < candidates.length && candidates[next] < info.uid) next++;
    if (next === candidates.length) break;
    if (candidates[next] !== info.uid) continue;
    const headers = parseHeaderSection(body);
    const last = info.uid >= candidates[candidates.length - 1];
    if (wanted.every(([name, value]) => headerContains(headers, name, value))) yield info;
    if (last) break;
  }
}

const CRITERIA = ['uids', 'before', 'since', 'larger', 'smaller', 'flags', 'noFlags', 'headers'];
/** RFC 5322 ftext: printable ASCII but ':' (`--header "Subject: x"` names no header: NAME=VALUE was meant). */
const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;

/** A wrong criterion is INVALID: a string date threw a TypeError, a bad header name matched nothing, silently. */
function checkCriteria(criteria: unknown): void {
  const c = checkOptions(checkObject(criteria, 'search criteria'), CRITERIA, 'search criterion');
  if (c.uids !== undefined) normalizeUids(c.uids);
  for (const key of ['before', 'since'] as const) {
    const date = c[key];
    if (date !== undefined && !(date instanceof Date && Number.isFinite(date.getTime()))) throw new MailstoreError('INVALID', `search ${key} must be a valid Date, got ${String(date)}`);
  }
  if (c.larger !== undefined) checkCount(c.larger, 'search larger');
  if (c.smaller !== undefined) checkCount(c.smaller, 'search smaller');
  for (const entry of c.headers === undefined ? [] : checkArray(c.headers, 'search headers')) {
    const [name, value] = checkArray(entry, 'a search header ([name, value])');
    if (!FIELD_NAME.test(checkString(name, 'a search header name'))) {
      throw new MailstoreError('INVALID', `${JSON.stringify(name)} is no header name (printable ASCII without ':'; on the command line --header NAME=VALUE)`);
    }
    checkString(value, `the value searched in header ${name as string}`);
  }
}

/** The header fields (name lower-cased, value unfolded) of a message: up to the first empty line. */
export function parseHeaderSection(body: Buffer): [string, string][] {
  const limit = Math.min(body.length, limits.searchHeaderBytesMax);
  // a message that starts with the empty line has no header fields: what follows it is body
  if (body[0] === 0x0a || (body[0] === 0x0d && body[1] === 0x0a)) return [];
  let end = limit;
  for (let i = 0; i < limit; i++) {
    if (body[i] !== 0x0a) continue;
    if (body[i + 1] === 0x0a || (body[i + 1] === 0x0d && body[i + 2] === 0x0a)) { end = i + 1; break; }
  }
  // RFC 6532: 8-bit header text is UTF-8 (an invalid sequence reads as U+FFFD, as in Dovecot)
  const text = body.subarray(0, end).toString('utf8').replace(/\r?\n[ \t]+/g, ' ');
  const fields: [string, string][] = [];
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    // WSP may stand before the colon (RFC 5322 obs-optional), never before a name: a line that
    // starts with it names no field (" From: x" is no From)
    fields.push([line.slice(0, colon).trimEnd().toLowerCase(), line.slice(colon + 1).trim()]);
  }
  return fields;
}

function headerContains(headers: [string, string][], name: string, value: string): boolean {
  const field = name.toLowerCase();
  const needle = foldCase(value);
  return headers.some(([n, v]) => n === field && foldCase(decodeEncodedWords(v)).includes(needle));
}

/**
 * RFC 9051 6.4.4 asks string keys to match as i;unicode-casemap (RFC 5051): case-mapped, then
 * NFKD, so "Ä" typed composed or decomposed, or a full-width "！", finds the same text (Dovecot's way).
 */
function foldCase(text: string): string {
  return text.toLowerCase().normalize('NFKD');
}
