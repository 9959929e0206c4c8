// `mailstore search MAILBOX [keys]`: IMAP SEARCH's common keys, all of which must match (AND), like
// `doveadm search`. Date, size and flag keys read the index only; --header, --subject and --from
// read each remaining message's header section (its bytes verified against the hash first).
import { Option, type Command } from 'commander';
import { searchMessages, type SearchCriteria } from '../../store/search.js';
import { wantsJson, withReadStore } from '../context.js';
import { parseAgeOrDate, parseCount } from '../dates.js';
import { resolveUidSet } from '../uids.js';
import { printMessages } from './messages.js';

interface SearchOptions {
  uids?: string; before?: string; since?: string; larger?: string; smaller?: string;
  flag?: string[]; noFlag?: string[]; header?: string[]; subject?: string; from?: string;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function register(program: Command): void {
  program
    .command('search <mailbox>')
    .description('find messages matching every given key (IMAP SEARCH: BEFORE, SINCE, LARGER, SMALLER, KEYWORD, UNKEYWORD, HEADER, SUBJECT, FROM); changes nothing')
    .option('--uids <set>', 'only these UIDs (e.g. 1:100)')
    .option('--before <date>', 'internal date before DATE (ISO 8601, without a zone UTC; or an age such as 30d)')
    .option('--since <date>', 'internal date at or after DATE (or an age such as 7d)')
    .option('--larger <bytes>', 'size above BYTES')
    .option('--smaller <bytes>', 'size below BYTES')
    .option('--flag <flag>', 'has FLAG (repeatable), e.g. --flag "\\Seen"', collect)
    .addOption(lacksFlagOption())
    .option('--header <name=value>', 'header NAME contains VALUE, case-insensitive (repeatable; "NAME=" tests presence)', collect)
    .option('--subject <text>', 'Subject contains TEXT')
    .option('--from <text>', 'From contains TEXT')
    .option('--json', 'print an array of {uid, size, internalDate, flags, modseq, hash}')
    .action(async (mailbox: string, options: SearchOptions, command: Command) => {
      await withReadStore(command, async (store) => {
        const criteria = toCriteria(options);
        if (options.uids !== undefined) criteria.uids = await resolveUidSet(store, mailbox, options.uids);
        await printMessages(searchMessages(store, mailbox, criteria), wantsJson(command));
      });
    });
}

/** `--no-flag F` takes a value: not commander's negation of --flag, so negate is switched off. */
function lacksFlagOption(): Option {
  const option = new Option('--no-flag <flag>', 'lacks FLAG (repeatable), e.g. --no-flag "\\Seen"').argParser(collect);
  option.negate = false;
  return option;
}

function toCriteria(options: SearchOptions): SearchCriteria {
  const criteria: SearchCriteria = { flags: options.flag ?? [], noFlags: Array.isArray(options.noFlag) ? options.noFlag : [] };
  if (options.before !== undefined) criteria.before = parseAgeOrDate(options.before, '--before');
  if (options.since !== undefined) criteria.since = parseAgeOrDate(options.since, '--since');
  if (options.larger !== undefined) criteria.larger = parseCount(options.larger, '--larger');
  if (options.smaller !== undefined) criteria.smaller = parseCount(options.smaller, '--smaller');
  const headers: [string, string][] = [];
  for (const entry of options.header ?? []) {
    const at = entry.indexOf('=');
    headers.push(at < 0 ? [entry, ''] : [entry.slice(0, at), entry.slice(at + 1)]);
  }
  if (options.subject !== undefined) headers.push(['subject', options.subject]);
  if (options.from !== undefined) headers.push(['from', options.from]);
  if (headers.length > 0) criteria.headers = headers;
  return criteria;
}
