// Public methods normalise and check their arguments here, then call internals with exact values.
import { MailstoreError } from '../errors.js';
import { limits } from '../limits.js';
import type { CopyPool } from './copy-pool.js';
import type { MessageAddExtras } from './records.js';

export const SEPARATOR = '/';

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Characters that make a name read as something it is not: every invisible formatting character
 * (Unicode Cf: bidi embeddings, overrides, isolates and marks, zero-width spaces and joiners, the
 * word joiner, BOM, soft hyphen, tags) and the line and paragraph separators. Refused in every
 * name a person reads, as PRECIS (RFC 8264) does for identifiers.
 */
function hasLookAlike(text: string): boolean {
  // all of them lie past ASCII: a name of ASCII alone (nearly all) is not searched; the class is
  // built at its first use, since V8 builds a \p{...} class from ICU's tables when the literal is
  // evaluated (~2M instructions each, paid at load by every command; issue 16)
  if (!NOT_ASCII.test(text)) return false;
  lookAlike ??= /[\p{Cf}\p{Zl}\p{Zp}]/u;
  return lookAlike.test(text);
}
let lookAlike: RegExp | undefined;
const NOT_ASCII = /[^\x00-\x7f]/;

/** A string argument, or INVALID naming what it should have been. */
export function checkString(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new MailstoreError('INVALID', `${what} must be a string, got ${describe(value)}`);
  return value;
}

/** A mailbox id as MailboxSummary gives it (a UUID; dashes optional): its 16 bytes, or INVALID. */
export function mailboxIdBytes(value: unknown): Buffer {
  const hex = checkString(value, 'mailboxId').replace(/-/g, '').toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(hex)) throw new MailstoreError('INVALID', `mailboxId must be a mailbox's id (a UUID), got ${describe(value)}`);
  return Buffer.from(hex, 'hex');
}

/** The last name accepted, its components (callers get copies) and the name limits it was checked against. */
let lastParsed: { name: string; components: readonly string[]; bytes: number; componentBytes: number; depth: number } | undefined;

/**
 * A mailbox name as its hierarchy components, in Unicode NFC (create, lookup, rename and list all
 * normalise the same way, so one name never stands for two mailboxes). Strict: no empty components,
 * no control characters, no bidi or zero-width characters.
 */
export function parseMailboxName(name: unknown): string[] {
  // deliveries name the same mailbox again and again; the checks depend on the name and the name limits alone
  const { mailboxNameBytesMax: bytes, mailboxNameComponentBytesMax: componentBytes, mailboxNameDepthMax: depth } = limits;
  const last = lastParsed;
  if (last !== undefined && name === last.name && bytes === last.bytes && componentBytes === last.componentBytes && depth === last.depth) return last.components.slice();
  const components = parseMailboxNameOnce(name);
  lastParsed = { name: name as string, components: components.slice(), bytes, componentBytes, depth };
  return components;
}

function parseMailboxNameOnce(name: unknown): string[] {
  checkString(name, 'mailbox name');
  const bad = (why: string) => new MailstoreError('INVALID', `invalid mailbox name ${JSON.stringify(name)}: ${why}`, { path: name as string });
  if ((name as string).length === 0) throw bad('empty');
  if (/[\ud800-\udfff]/.test((name as string).replace(/[\ud800-\udbff][\udc00-\udfff]/g, ''))) throw bad('contains an unpaired surrogate');
  const normalized = (name as string).normalize('NFC');
  if (Buffer.byteLength(normalized) > limits.mailboxNameBytesMax) throw bad(`longer than ${limits.mailboxNameBytesMax} bytes`);
  if (CONTROL.test(normalized)) throw bad('contains a control character');
  if (hasLookAlike(normalized)) throw bad('contains an invisible formatting character (bidi control, zero-width, soft hyphen, ...)');
  const components = normalized.split(SEPARATOR);
  checkComponents(components, bad);
  for (const c of components) {
    if (c.includes('*') || c.includes('%')) throw bad('"*" and "%" are LIST wildcards');
  }
  return components;
}

/** Name-wide bounds, checked again on every name a rename produces. */
export function checkComponents(components: readonly string[], bad: (why: string) => MailstoreError): void {
  if (components.length > limits.mailboxNameDepthMax) throw bad(`deeper than ${limits.mailboxNameDepthMax} levels`);
  if (Buffer.byteLength(components.join(SEPARATOR)) > limits.mailboxNameBytesMax) throw bad(`longer than ${limits.mailboxNameBytesMax} bytes`);
  for (const c of components) {
    if (c.length === 0) throw bad('has an empty component (leading, trailing or doubled "/")');
    if (Buffer.byteLength(c) > limits.mailboxNameComponentBytesMax) throw bad(`a component is longer than ${limits.mailboxNameComponentBytesMax} bytes`);
    if (c === '.' || c === '..') throw bad('"." and ".." are not mailbox names');
  }
}

/** `name` (at or below `source`) moved below `target`, INVALID when the new name passes a name-wide bound (`doing`: "renaming A to B"). */
export function renamedMailboxName(name: readonly string[], source: readonly string[], target: readonly string[], doing: string): string[] {
  const renamed = [...target, ...name.slice(source.length)];
  checkComponents(renamed, (why) => new MailstoreError('INVALID', `${doing} would make ${formatMailboxName(renamed)} ${why}`, { path: formatMailboxName(target) }));
  return renamed;
}

export function formatMailboxName(components: readonly string[]): string {
  return components.join(SEPARATOR);
}

/** Whether mailbox `name` is `root` or below it (components, as parseMailboxName gives them). */
export function isAtOrBelow(name: readonly string[], root: readonly string[]): boolean {
  return name.length >= root.length && root.every((component, i) => component === name[i]);
}

export const SYSTEM_FLAGS = ['\\Seen', '\\Answered', '\\Flagged', '\\Deleted', '\\Draft'];
const ATOM_SPECIALS = /[(){ %*"\\\]\u0000-\u001f\u007f]/;

/**
 * Which flag a name stands for: IMAP atoms are case-insensitive (RFC 9051 section 9), so
 * `$Forwarded` and `$forwarded` are one keyword (as in Dovecot and Cyrus).
 */
export function flagKey(flag: string): string {
  return flag.toLowerCase();
}

/**
 * Flags: IMAP system flags (case-normalised) and keywords (atoms). Returns a sorted list with
 * one spelling per flag (the first given).
 */
export function normalizeFlags(flags: unknown): string[] {
  if (flags === undefined) return [];
  if (!Array.isArray(flags)) throw new MailstoreError('INVALID', 'flags must be an array of strings');
  if (flags.length > limits.flagsPerMessageMax) throw new MailstoreError('INVALID', `more than ${limits.flagsPerMessageMax} flags`);
  const out = new Map<string, string>();
  for (const flag of flags) {
    if (typeof flag !== 'string' || flag.length === 0 || Buffer.byteLength(flag) > limits.flagBytesMax) {
      throw new MailstoreError('INVALID', `invalid flag ${JSON.stringify(flag)}`);
    }
    if (flag.startsWith('\\')) {
      const system = SYSTEM_FLAGS.find((s) => s.toLowerCase() === flag.toLowerCase());
      if (!system) throw new MailstoreError('INVALID', `unknown system flag ${flag} (allowed: ${SYSTEM_FLAGS.join(' ')})`);
      out.set(flagKey(system), system);
    } else {
      // An atom is printable ASCII, so no bidi or zero-width character can hide in a keyword.
      if (ATOM_SPECIALS.test(flag) || /[^\x21-\x7e]/.test(flag)) throw new MailstoreError('INVALID', `invalid keyword ${JSON.stringify(flag)}: must be an IMAP atom`);
      if (!out.has(flagKey(flag))) out.set(flagKey(flag), flag);
    }
  }
  return [...out.values()].sort();
}

/**
 * A message's flags after a STORE (normalised add/remove or replace), matched case-insensitively:
 * a keyword the message has keeps its spelling, so another spelling of it is no change.
 */
export function changedFlags(current: readonly string[], change: { add: string[]; remove: string[]; replace?: string[] }): string[] {
  const had = new Map(current.map((f) => [flagKey(f), f]));
  if (change.replace) return change.replace.map((f) => had.get(flagKey(f)) ?? f).sort();
  const removed = new Set(change.remove.map(flagKey));
  const next = new Map([...had].filter(([key]) => !removed.has(key)));
  for (const f of change.add) if (!next.has(flagKey(f))) next.set(flagKey(f), f);
  return [...next.values()].sort();
}

/** Whether `flags` holds `flag` (case-insensitively, as IMAP compares them). */
export function hasFlag(flags: readonly string[], flag: string): boolean {
  const key = flagKey(flag);
  return flags.some((f) => flagKey(f) === key);
}

/** RFC 4314 rights letters (with the obsolete c and d of RFC 2086). */
export const ALL_RIGHTS = 'lrswipkxtean';
const RIGHTS_LETTERS = /^[lrswipkxteacdn0-9]*$/;

/**
 * The obsolete rights as the RFC 4314 rights they stand for (section 2.1.1; Dovecot's split):
 * kept as letters, a server checking k before CREATE refused an RFC 2086 client's "c".
 */
const OBSOLETE_RIGHTS: Record<string, string> = { c: 'kx', d: 'et' };

export function normalizeRights(rights: unknown): string {
  if (typeof rights !== 'string' || !RIGHTS_LETTERS.test(rights)) {
    throw new MailstoreError('INVALID', `invalid rights ${JSON.stringify(rights)} (RFC 4314 letters: ${ALL_RIGHTS}; the obsolete c and d stand for kx and et)`);
  }
  return [...new Set([...rights].flatMap((letter) => [...(OBSOLETE_RIGHTS[letter] ?? letter)]))].sort().join('');
}

/**
 * A new mailbox's ACL, each entry normalised; an entry with no rights is no entry (as acl set
 * USER "" removes one): kept, it showed in getAcl and acl set USER "" could not remove it.
 */
export function normalizeAcl(acl: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [who, rights] of Object.entries(acl)) {
    const identifier = normalizeIdentifier(who);
    const normalized = normalizeRights(rights);
    if (normalized !== '') out[identifier] = normalized;
  }
  return out;
}

/**
 * A mailbox's owner: a user, so not "anyone" (RFC 4314's every-user identifier), which as an owner
 * took all rights, the admin right among them, for every user.
 */
export function normalizeOwner(owner: unknown): string {
  const user = normalizeIdentifier(owner);
  if (user === 'anyone') throw new MailstoreError('INVALID', '"anyone" cannot own a mailbox (it would give every user all rights, a among them): name a user, or give anyone rights with an ACL entry');
  if (user.startsWith('-')) throw new MailstoreError('INVALID', `${JSON.stringify(user)} cannot own a mailbox: a leading "-" names RFC 4314 negative rights (the owner's all rights would all be taken away); name a user`);
  return user;
}

/**
 * A stored owner as an owner can be given again: one an older version took ("anyone", "-x":
 * refused since) is no owner; its rights are in the ACL as they were (dump and restore).
 */
export function ownerKept(owner: string | undefined): string | undefined {
  return owner === undefined || owner === 'anyone' || owner.startsWith('-') ? undefined : owner;
}

/** An ACL identifier (user or group name): NFC, like mailbox names, so one person is one identifier. */
export function normalizeIdentifier(identifier: unknown): string {
  const normalized = typeof identifier === 'string' ? identifier.normalize('NFC') : undefined;
  if (normalized === undefined || normalized.length === 0 || Buffer.byteLength(normalized) > limits.identifierBytesMax || CONTROL.test(normalized) ||
    hasLookAlike(normalized) || /[\ud800-\udfff]/.test(normalized.replace(/[\ud800-\udbff][\udc00-\udfff]/g, ''))) {
    throw new MailstoreError('INVALID', `invalid ACL identifier ${JSON.stringify(identifier)} (1 to ${limits.identifierBytesMax} bytes; no control or invisible formatting characters)`);
  }
  return normalized;
}

/** A StoreOptions size: a whole number of bytes from `min` to `max`, else INVALID naming the option. */
export function checkByteBound(value: unknown, what: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new MailstoreError('INVALID', `${what} must be a whole number of bytes from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

/** A uid list: one uid or an array of them; returned sorted and unique. */
export function normalizeUids(uids: unknown): number[] {
  const list = typeof uids === 'number' ? [uids] : uids;
  if (!Array.isArray(list)) throw new MailstoreError('INVALID', `uids must be a number or an array of numbers, got ${describe(uids)}`);
  let ascending = true;
  for (let i = 0; i < list.length; i++) {
    checkUid(list[i]);
    if (i > 0 && list[i] <= list[i - 1]) ascending = false;
  }
  if (ascending) return list.slice(); // as a server or the CLI sends a UID set: the answer already
  // sorted as 4-byte numbers: a Set of the uids and a sorted copy took ~40 MB for STORE 1:* of 1M
  const sorted = Uint32Array.from(list as number[]).sort();
  const unique: number[] = [];
  for (let i = 0; i < sorted.length; i++) if (i === 0 || sorted[i] !== sorted[i - 1]) unique.push(sorted[i]);
  return unique;
}

/** One uid (IMAP: 1 .. 2^32-1); an array is not one uid. */
export function checkUid(uid: unknown, what = 'uid'): number {
  if (typeof uid !== 'number' || !Number.isInteger(uid) || uid < 1 || uid > 0xffffffff) {
    throw new MailstoreError('INVALID', `invalid ${what} ${describe(uid)}: must be an integer from 1 to ${0xffffffff}`);
  }
  return uid;
}

/** A modseq (CONDSTORE): a non-negative safe integer. */
export function checkModseq(modseq: unknown, what = 'modseq'): number {
  if (typeof modseq !== 'number' || !Number.isSafeInteger(modseq) || modseq < 0) {
    throw new MailstoreError('INVALID', `invalid ${what} ${describe(modseq)}: must be a non-negative integer`);
  }
  return modseq;
}

/** A non-negative safe integer (sizes, offsets, pack numbers of maintenance calls). */
export function checkCount(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new MailstoreError('INVALID', `${what} must be a non-negative integer, got ${describe(value)}`);
  return value;
}

/** Message bytes: a Buffer or Uint8Array (not a string, ArrayBuffer or DataView). */
export function checkBytes(bytes: unknown, what = 'message bytes'): Uint8Array {
  if (!(bytes instanceof Uint8Array)) throw new MailstoreError('INVALID', `${what} must be a Buffer or Uint8Array, got ${describe(bytes)}`);
  return bytes;
}

/** A BLAKE3-256 hash given as a Buffer of 32 bytes; a copy, since the caller may reuse its buffer. */
export function checkHash(hash: unknown, what = 'hash'): Buffer {
  if (!(hash instanceof Uint8Array) || hash.length !== 32) throw new MailstoreError('INVALID', `${what} must be a 32-byte Buffer, got ${describe(hash)}`);
  return Buffer.from(hash);
}

export function checkFunction<F>(value: unknown, what: string): F {
  if (typeof value !== 'function') throw new MailstoreError('INVALID', `${what} must be a function, got ${describe(value)}`);
  return value as F;
}

export function checkBoolean(value: unknown, what: string): boolean {
  if (typeof value !== 'boolean') throw new MailstoreError('INVALID', `${what} must be a boolean, got ${describe(value)}`);
  return value;
}

export function checkArray(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw new MailstoreError('INVALID', `${what} must be an array, got ${describe(value)}`);
  return value;
}

/** An object argument (not null, not an array). */
export function checkObject(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new MailstoreError('INVALID', `${what} must be an object, got ${describe(value)}`);
  return value as Record<string, unknown>;
}

/**
 * An options object: undefined means none; any key not in `allowed` is refused, so a misspelt
 * option is an error rather than silently ignored.
 */
export function checkOptions(value: unknown, allowed: readonly string[], what: string): Record<string, unknown> {
  if (value === undefined) return {};
  const options = checkObject(value, what);
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key) && options[key] !== undefined) throw new MailstoreError('INVALID', `unknown ${what} ${JSON.stringify(key)} (known: ${allowed.join(', ')})`);
  }
  return options;
}

/** A delete's options: `ifEmpty` refuses (REFUSED) a mailbox or tree holding messages, decided in the delete's own batch. */
export interface DeleteOptions {
  ifEmpty?: boolean;
}

/**
 * `ifEmpty` of a delete, checked against the count its batch sees: a count taken in an earlier
 * call let a delivery landing in between be deleted (acknowledged mail lost).
 */
export function checkDeletable(name: string, messages: number, options: unknown, tree = false): void {
  const { ifEmpty } = checkOptions(options, ['ifEmpty'], 'delete option');
  if (ifEmpty === undefined || !checkBoolean(ifEmpty, 'ifEmpty') || messages === 0) return;
  throw new MailstoreError('REFUSED', `${name}${tree ? ' and below' : ''} holds ${messages} message${messages === 1 ? '' : 's'}; it is deleted only when empty (mailstore: add --force to delete them with it)`, { path: name });
}

/**
 * Buffers handed over to the store by internal code that made them and keeps no reference (the
 * daemon's bodies, freshly decoded from its socket): ownCopy takes them as they are, once. Not
 * exported from the package, so a public caller's buffer is always copied.
 */
const handedOver = new WeakSet<Uint8Array>();

/**
 * Gives `bytes` to the store's next ownCopy of them: the caller must not change or reuse them
 * before the call they were given to has settled (the store keeps no reference past that: an
 * append's bytes are written and synced, a synchronous replica's round copied, when it resolves).
 */
export function handOver<T extends Uint8Array>(bytes: T): T {
  handedOver.add(bytes);
  return bytes;
}

/**
 * A copy the caller cannot change after the call: what is hashed is what is written. A large one
 * goes into `pool`'s recycled memory when given (the caller gives it back once the call settled).
 */
export function ownCopy(bytes: Uint8Array, pool?: CopyPool): Buffer {
  if (handedOver.delete(bytes)) return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (pool?.recycles(bytes.length)) return pool.copy(bytes);
  return Buffer.from(bytes);
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  if (typeof value === 'number') return String(value);
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  return typeof value === 'object' ? (value.constructor?.name ?? 'object') : typeof value;
}

/**
 * The optional per-message metadata of an append (AppendOptions envelopeFrom, dateZoneMinutes,
 * recent) as message.add op fields, each absent when not given: absent means unknown.
 */
export function normalizeMessageExtras(item: Record<string, unknown>): MessageAddExtras {
  const x: MessageAddExtras = {};
  const { envelopeFrom: from, dateZoneMinutes: zone, recent } = item;
  if (from !== undefined) {
    if (typeof from !== 'string' || !/^[\x21-\x7e]+$/.test(from) || from.length > limits.envelopeFromBytesMax) {
      throw new MailstoreError('INVALID', `invalid envelopeFrom ${describe(from)}: one token of printable ASCII without spaces, 1 to ${limits.envelopeFromBytesMax} bytes`);
    }
    x.envelopeFrom = from;
  }
  if (zone !== undefined) {
    if (typeof zone !== 'number' || !Number.isInteger(zone) || zone < limits.dateZoneMinutesMin || zone > limits.dateZoneMinutesMax) {
      throw new MailstoreError('INVALID', `invalid dateZoneMinutes ${describe(zone)}: whole minutes east of UTC from ${limits.dateZoneMinutesMin} to ${limits.dateZoneMinutesMax}`);
    }
    x.dateZone = zone;
  }
  if (recent !== undefined) {
    if (typeof recent !== 'boolean') throw new MailstoreError('INVALID', `invalid recent ${describe(recent)}: must be a boolean`);
    if (recent) x.recent = true;
  }
  return x;
}

/** An internal date as ms since the epoch, within limits.internalDateMs{Min,Max}; undefined is now. */
export function normalizeDate(date: unknown): number {
  if (date === undefined) return Date.now();
  const ms = date instanceof Date ? date.getTime() : typeof date === 'number' ? date : typeof date === 'string' ? parseDateText(date) : NaN;
  if (!Number.isInteger(ms) || ms < limits.internalDateMsMin || ms > limits.internalDateMsMax) {
    const shown = date instanceof Date ? String(date) : describe(date);
    throw new MailstoreError('INVALID', `invalid internal date ${shown}: must be a real calendar date from 1970-01-01 to 9999-12-31 UTC (ms since the epoch, a Date, ISO 8601 or RFC 5322)`);
  }
  return ms;
}

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(?:Z|[+-](\d{2}):?(\d{2}))?)?$/i;
const RFC5322_DATE = /^(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),\s*)?(\d{1,2})\s+(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+(\d{4})\s+(\d{2}):(\d{2})(?::(\d{2}))?(?:\s+(?:[+-](\d{2})(\d{2})|UT|GMT|Z|[ECMP][SD]T))?$/i;
const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/**
 * ISO 8601 or RFC 5322 date text, as ms since the epoch, or NaN. Date.parse alone rolls impossible
 * dates over (2024-02-30 became March 1) and reads "-1" as 2001: each field is checked first.
 */
export function parseDateText(text: string): number {
  const trimmed = text.trim();
  const iso = ISO_DATE.exec(trimmed);
  const rfc = iso ? undefined : RFC5322_DATE.exec(trimmed);
  if (!iso && !rfc) return NaN;
  const [year, month, day, hour, minute, second, offsetHours, offsetMinutes] = iso
    ? [iso[1], iso[2], iso[3], iso[4], iso[5], iso[6], iso[7], iso[8]].map((f) => Number(f ?? 0))
    : [rfc![3], String(MONTHS.indexOf(rfc![2].toLowerCase()) + 1), rfc![1], rfc![4], rfc![5], rfc![6], rfc![7], rfc![8]].map((f) => Number(f ?? 0));
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || second > 59 || offsetHours > 23 || offsetMinutes > 59) return NaN;
  // A time without a zone is UTC, as a date alone is (Date.parse reads it in the process's time
  // zone: the CLI's and the daemon's could differ, and a time in a DST gap was moved an hour)
  if (iso && iso[4] !== undefined && iso[7] === undefined && !/z$/i.test(trimmed)) return Date.parse(`${trimmed}Z`);
  if (rfc && rfc[7] === undefined && !/\s(?:ut|gmt|z|[ecmp][sd]t)$/i.test(trimmed)) return Date.parse(`${trimmed} +0000`);
  return Date.parse(trimmed);
}

function daysIn(year: number, month: number): number {
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  return [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
}

/** A LIST pattern, checked like a mailbox name (wildcards allowed) and NFC-normalised the same way. */
export function normalizePattern(pattern: unknown): string | undefined {
  if (pattern === undefined) return undefined;
  checkString(pattern, 'LIST pattern');
  const normalized = (pattern as string).normalize('NFC');
  const bad = (why: string) => new MailstoreError('INVALID', `invalid LIST pattern ${JSON.stringify(pattern)}: ${why}`);
  if (Buffer.byteLength(normalized) > limits.mailboxNameBytesMax) throw bad(`longer than ${limits.mailboxNameBytesMax} bytes`);
  if (CONTROL.test(normalized)) throw bad('contains a control character');
  if (hasLookAlike(normalized)) throw bad('contains an invisible formatting character (bidi control, zero-width, soft hyphen, ...)');
  return normalized;
}

/** Counts the matcher's work, so a test can show it stays within name length × pattern length. */
export interface MatchSteps {
  steps: number;
}

/**
 * IMAP LIST pattern: `*` matches anything, `%` anything but the separator. Runs the pattern as an
 * NFA, every state at once, so a name costs at most (name length) × (pattern length) steps
 * whatever the pattern: a backtracking regex took 23 s for '*a*a*a*a*a*c' on 200 'a's.
 */
export function listPatternMatcher(pattern: string | undefined, counter?: MatchSteps): (name: string) => boolean {
  if (pattern === undefined) return () => true;
  const tokens = pattern.replace(/\*+/g, '*'); // '**' matches what '*' does
  if (tokens === '*') return () => true;
  const width = tokens.length;
  const wildcard = (i: number) => tokens[i] === '*' || tokens[i] === '%';
  // A wildcard may match nothing: reaching its state also reaches the next one.
  const close = (states: Uint8Array) => {
    for (let i = 0; i < width; i++) if (states[i] && wildcard(i)) states[i + 1] = 1;
  };
  return (name) => {
    let states = new Uint8Array(width + 1);
    let next = new Uint8Array(width + 1);
    states[0] = 1;
    close(states);
    for (let n = 0; n < name.length; n++) {
      const ch = name[n];
      next.fill(0);
      let alive = false;
      for (let i = 0; i < width; i++) {
        if (counter) counter.steps++;
        if (!states[i]) continue;
        const token = tokens[i];
        if (token === '*' || (token === '%' && ch !== SEPARATOR)) next[i] = 1;
        else if (token === ch) next[i + 1] = 1;
        else continue;
        alive = true;
      }
      if (!alive) return false;
      close(next);
      [states, next] = [next, states];
    }
    return states[width] === 1;
  };
}

/** The literal prefix of a pattern (before its first wildcard), as whole components where possible. */
export function patternPrefixComponents(pattern: string | undefined): string[] {
  if (!pattern) return [];
  const cut = pattern.search(/[*%]/);
  const literal = cut === -1 ? pattern : pattern.slice(0, cut);
  const parts = literal.split(SEPARATOR);
  parts.pop(); // the last part may be partial
  return parts.filter((p) => p.length > 0);
}
