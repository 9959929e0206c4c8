// Dates on the command line for retention and search: an age ("30d", "12h", "2w") counted back
// from now, or an absolute date (ISO 8601, RFC 5322, epoch seconds) as --date takes it.
import { MailstoreError } from '../errors.js';
import { parseDateOption } from './context.js';

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/** "30d" is 30 days before `now`; anything else is read as a date. `option` names it in a refusal. */
export function parseAgeOrDate(text: string, option: string, now: number = Date.now()): Date {
  const age = /^(\d+)([smhdw])$/.exec(text.trim());
  if (age) return new Date(now - Number(age[1]) * UNIT_MS[age[2]]);
  return parseDateOption(text, option, 'an age: 30d, 12h, 2w; or ISO 8601, RFC 5322 or epoch seconds')!;
}

/** A duration option: 500ms, 90s, 10m, 2h, 7d; seconds when no unit is given. */
export function parseDuration(text: string, option: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new MailstoreError('INVALID', `cannot read the duration ${JSON.stringify(text)} given to ${option} (e.g. 0, 90s, 10m, 2h, 7d)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 's']!;
  return Math.round(Number(m[1]) * unit);
}

/** A byte count with an optional K, M, G or T suffix (powers of 1024): "500M". */
export function parseBytes(text: string, option?: string): number {
  const m = /^(\d+)([KMGT]?)i?B?$/i.exec(text.trim());
  if (!m) throw new MailstoreError('INVALID', `not a byte count: ${JSON.stringify(text)}${option ? ` given to ${option}` : ''} (a whole number, e.g. 1048576, 500M, 2G)`);
  const scale = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[m[2].toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'];
  const value = Number(m[1]) * scale;
  if (!Number.isSafeInteger(value)) throw new MailstoreError('INVALID', `byte count ${text} is too large`);
  return value;
}

/** A non-negative integer (a message count). */
export function parseCount(text: string, option: string): number {
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(Number(text))) throw new MailstoreError('INVALID', `not a count: ${JSON.stringify(text)} given to ${option} (a whole number)`);
  return Number(text);
}
