// Arguments that are not UTF-8 (loaded only when an argument holds U+FFFD: program.ts).
import { readFileSync } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { MailstoreError } from '../errors.js';

/**
 * node decodes the command line as UTF-8 and writes U+FFFD for bytes that are not: names typed on
 * a Latin-1 terminal ("Entw\xfcrfe", "Entw\xe4rfe") would both be "Entw\ufffdrfe", one mailbox, and
 * `mailbox delete` of one would delete the other. Where an argument holds U+FFFD, the bytes the
 * process was given (/proc/self/cmdline) say whether it was typed so or stood for other bytes.
 */
export function refuseArgumentsNotUtf8(cmdline = '/proc/self/cmdline'): void {
  let raw: Buffer;
  try {
    raw = readFileSync(cmdline);
  } catch (error) {
    // no /proc (a chroot without it): the bytes cannot be told from a typed U+FFFD, and going on
    // could take one name for another (a delete of the wrong mailbox); a typed U+FFFD is rare
    throw new MailstoreError('INVALID', `an argument holds U+FFFD, which node also writes for bytes that are not UTF-8, and ${cmdline} cannot be read ` +
      `to tell which (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): refused, nothing was done. Give the name in UTF-8 without U+FFFD, or mount /proc`);
  }
  const parts: Buffer[] = [];
  for (let start = 0; start < raw.length;) {
    const end = raw.indexOf(0, start);
    parts.push(raw.subarray(start, end === -1 ? raw.length : end));
    start = end === -1 ? raw.length : end + 1;
  }
  const bad = parts.find((part) => !isUtf8(part));
  if (!bad) return;
  const shown = [...bad].map((byte) => (byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`)).join('');
  throw new MailstoreError('INVALID', `the argument "${shown}" is not UTF-8 (a terminal or script in another encoding?): mailstore's names are UTF-8, ` +
    'and bytes that are not would all read as U+FFFD, two names one mailbox. Give it in UTF-8 (e.g. iconv -f latin1 -t utf-8, or LANG=C.UTF-8 in the terminal)');
}
