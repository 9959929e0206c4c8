// Public methods normalise and check their arguments here, then call internals with exact values.
import { MailstoreError } from '../errors.js';
import { limits } from '../limits.js';

export const SEPARATOR = '/';

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** A mailbox name as its hierarchy components; strict: no empty components, no control characters. */
export function parseMailboxName(name: unknown): string[] {
  if (typeof name !== 'string') throw new MailstoreError('INVALID', `mailbox name must be a string, got ${typeof name}`);
  const bad = (why: string) => new MailstoreError('INVALID', `invalid mailbox name ${JSON.stringify(name)}: ${why}`, { path: name });
  if (name.length === 0) throw bad('empty');
  if (Buffer.byteLength(name) > limits.mailboxNameBytesMax) throw bad(`longer than ${limits.mailboxNameBytesMax} bytes`);
  if (CONTROL.test(name)) throw bad('contains a control character');
  if (name.normalize('NFC') !== name) throw bad('not in Unicode NFC form');
  if (/[\ud800-\udfff]/.test(name.replace(/[\ud800-\udbff][\udc00-\udfff]/g, ''))) throw bad('contains an unpaired surrogate');
  const components = name.split(SEPARATOR);
  if (components.length > limits.mailboxNameDepthMax) throw bad(`deeper than ${limits.mailboxNameDepthMax} levels`);
  for (const c of components) {
    if (c.length === 0) throw bad('has an empty component (leading, trailing or doubled "/")');
    if (Buffer.byteLength(c) > limits.mailboxNameComponentBytesMax) throw bad(`a component is longer than ${limits.mailboxNameComponentBytesMax} bytes`);
    if (c === '.' || c === '..') throw bad('"." and ".." are not mailbox names');
    if (c.includes('*') || c.includes('%')) throw bad('"*" and "%" are LIST wildcards');
  }
  return components;
}

export function formatMailboxName(components: readonly string[]): string {
  return components.join(SEPARATOR);
}

export const SYSTEM_FLAGS = ['\\Seen', '\\Answered', '\\Flagged', '\\Deleted', '\\Draft'];
const ATOM_SPECIALS = /[(){ %*"\\\]\u0000-\u001f\u007f]/;

/** Flags: IMAP system flags (case-normalised) and keywords (atoms). Returns a sorted, unique list. */
export function normalizeFlags(flags: unknown): string[] {
  if (flags === undefined) return [];
  if (!Array.isArray(flags)) throw new MailstoreError('INVALID', 'flags must be an array of strings');
  if (flags.length > limits.flagsPerMessageMax) throw new MailstoreError('INVALID', `more than ${limits.flagsPerMessageMax} flags`);
  const out = new Set<string>();
  for (const flag of flags) {
    if (typeof flag !== 'string' || flag.length === 0 || Buffer.byteLength(flag) > limits.flagBytesMax) {
      throw new MailstoreError('INVALID', `invalid flag ${JSON.stringify(flag)}`);
    }
    if (flag.startsWith('\\')) {
      const system = SYSTEM_FLAGS.find((s) => s.toLowerCase() === flag.toLowerCase());
      if (!system) throw new MailstoreError('INVALID', `unknown system flag ${flag} (allowed: ${SYSTEM_FLAGS.join(' ')})`);
      out.add(system);
    } else {
      if (ATOM_SPECIALS.test(flag) || /[^\x21-\x7e]/.test(flag)) throw new MailstoreError('INVALID', `invalid keyword ${JSON.stringify(flag)}: must be an IMAP atom`);
      out.add(flag);
    }
  }
  return [...out].sort();
}

/** RFC 4314 rights letters (with the obsolete c and d of RFC 2086). */
export const ALL_RIGHTS = 'lrswipkxtean';
const RIGHTS_LETTERS = /^[lrswipkxteacdn0-9]*$/;

export function normalizeRights(rights: unknown): string {
  if (typeof rights !== 'string' || !RIGHTS_LETTERS.test(rights)) {
    throw new MailstoreError('INVALID', `invalid rights ${JSON.stringify(rights)} (RFC 4314 letters: ${ALL_RIGHTS})`);
  }
  return [...new Set(rights)].sort().join('');
}

export function normalizeIdentifier(identifier: unknown): string {
  if (typeof identifier !== 'string' || identifier.length === 0 || Buffer.byteLength(identifier) > limits.identifierBytesMax || CONTROL.test(identifier)) {
    throw new MailstoreError('INVALID', `invalid ACL identifier ${JSON.stringify(identifier)}`);
  }
  return identifier;
}

export function normalizeUids(uids: unknown): number[] {
  const list = typeof uids === 'number' ? [uids] : uids;
  if (!Array.isArray(list)) throw new MailstoreError('INVALID', 'uids must be a number or an array of numbers');
  for (const uid of list) {
    if (!Number.isInteger(uid) || uid < 1 || uid > 0xffffffff) throw new MailstoreError('INVALID', `invalid uid ${JSON.stringify(uid)}`);
  }
  return [...new Set(list as number[])].sort((a, b) => a - b);
}

export function normalizeDate(date: unknown): number {
  if (date === undefined) return Date.now();
  const ms = date instanceof Date ? date.getTime() : typeof date === 'number' ? date : typeof date === 'string' ? Date.parse(date) : NaN;
  if (!Number.isFinite(ms)) throw new MailstoreError('INVALID', `invalid internal date ${JSON.stringify(date)}`);
  return Math.trunc(ms);
}

/** IMAP LIST pattern: `*` matches anything, `%` anything but the separator. */
export function listPatternMatcher(pattern: string | undefined): (name: string) => boolean {
  if (pattern === undefined || pattern === '*') return () => true;
  const re = new RegExp('^' + pattern.split('').map((ch) =>
    ch === '*' ? '.*' : ch === '%' ? '[^/]*' : ch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('') + '$', 's');
  return (name) => re.test(name);
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
