// `mailstore mailbox create|rename|delete|list|status|dump|undump`: the mailbox tree and its counters.
// Every change is durable (journaled and fsynced) when the command returns.
import type { Command } from 'commander';
import { MailstoreError } from '../../errors.js';
import type { MailStore } from '../../store/api.js';
import { printJson, printLine, wantsJson, withReadStore, withStore } from '../context.js';
import { lmtpCaseWarnings, reportWithWarnings } from '../lmtp-case.js';
import { registerDump } from './mailbox-dump.js';

export function register(program: Command): void {
  const mailbox = program
    .command('mailbox')
    .description('create, rename, delete, list mailboxes and show their status');

  mailbox
    .command('create <name>')
    .description('create a mailbox (hierarchy separator "/", e.g. user/alice/Sent); durable when it returns')
    .option('--owner <user>', 'give this user all rights on the mailbox')
    .option('--acl <user=rights...>', 'initial ACL entries, e.g. --acl bob=lr anyone=l')
    .option('--json', 'print the result as JSON')
    .action(runCreate);

  mailbox
    .command('rename <from> <to>')
    .description('rename a mailbox and everything below it (moves no message data); one journal record, durable when it returns')
    .option('--json', 'print the result as JSON')
    .action(runRename);

  mailbox
    .command('delete <name>')
    .description('delete a mailbox and its messages (refused when it holds messages, unless --force). The name is free, durably, when it returns; a crash while its messages are expunged is finished by the next open')
    .option('--force', 'delete even when the mailbox holds messages')
    .option('--recursive', 'delete the mailbox and every mailbox below it (their names are freed in one record)')
    .option('--json', 'print the result as JSON')
    .action(runDelete);

  mailbox
    .command('list [pattern]')
    .description('list mailboxes matching an IMAP LIST pattern (* any, % any but "/"); --user lists what that user may see; changes nothing')
    .option('--user <user>', 'only mailboxes this user has the l (lookup) right on, from the reverse ACL map, with their rights')
    .option('--json', 'print the result as JSON')
    .action(runList);

  mailbox
    .command('status <name>')
    .description('message count, bytes, unseen, uidnext, uidvalidity and highest modseq of a mailbox; changes nothing')
    .option('--json', 'print the result as JSON')
    .action(runStatus);

  registerDump(mailbox);
}

async function runCreate(name: string, options: { owner?: string; acl?: string[] }, command: Command): Promise<void> {
  const acl = parseAclEntries(options.acl ?? []);
  const created = await withStore(command, (store) => store.createMailbox(name, { owner: options.owner, acl }));
  await reportWithWarnings(created, lmtpCaseWarnings(created.name), wantsJson(command), `created ${created.name} (uidvalidity ${created.uidValidity})`);
}

async function runRename(from: string, to: string, _options: unknown, command: Command): Promise<void> {
  const result = await withStore(command, (store) => store.renameMailbox(from, to));
  // user/bob renamed user/Bob: every delivery to bob@ bounced from then on
  await reportWithWarnings({ from, to, ...result }, lmtpCaseWarnings(to), wantsJson(command), `renamed ${from} to ${to} (${result.renamed} mailbox${result.renamed === 1 ? '' : 'es'})`);
}

async function runDelete(name: string, options: DeleteOptions, command: Command): Promise<void> {
  const result = await withStore(command, (store) => deleteChecked(store, name, options));
  if (wantsJson(command)) return printJson({ name, deleted: true, ...result });
  else await printLine(`deleted ${name} (${result.mailboxes} mailbox${result.mailboxes === 1 ? '' : 'es'}, ${result.messages} message${result.messages === 1 ? '' : 's'})`);
}

export interface DeleteOptions {
  force?: boolean;
  recursive?: boolean;
}

/**
 * Refuses (REFUSED) a mailbox, or with --recursive a tree, that holds messages unless --force: in
 * the delete's own batch (ifEmpty), so a delivery landing meanwhile is never deleted with it.
 */
export async function deleteChecked(store: MailStore, name: string, options: DeleteOptions): Promise<{ mailboxes: number; messages: number }> {
  const ifEmpty = { ifEmpty: !options.force };
  if (!options.recursive) return { mailboxes: 1, ...(await store.deleteMailbox(name, ifEmpty)) };
  // loaded for a tree only: the daemon's procedures bring scrub, replication and node:tls, which every
  // mailbox command (status, list, create) loaded at start when this import was static (issue 16)
  const { procedures } = await import('../../daemon/procedures.js');
  return procedures(store).deleteMailboxTree(name, ifEmpty);
}

async function runList(pattern: string | undefined, options: { user?: string }, command: Command): Promise<void> {
  const list = await withReadStore(command, (store) => store.listMailboxes({ user: options.user, pattern }));
  if (wantsJson(command)) return printJson(list);
  for (const entry of list) await printLine(entry.rights === undefined ? entry.name : `${entry.name}\t${entry.rights}`);
}

async function runStatus(name: string, _options: unknown, command: Command): Promise<void> {
  const status = await withReadStore(command, (store) => store.status(name));
  if (wantsJson(command)) return printJson({ name, ...status });
  await printLine(
    `${name}: ${status.messages} messages, ${status.bytes} bytes, ${status.unseen} unseen, uidnext ${status.uidNext}, ` +
    `uidvalidity ${status.uidValidity}, highest modseq ${status.highestModseq}`,
  );
}

function parseAclEntries(entries: string[]): Record<string, string> {
  const acl: Record<string, string> = {};
  for (const entry of entries) {
    const at = entry.lastIndexOf('=');
    if (at <= 0) throw new MailstoreError('INVALID', `ACL entry ${JSON.stringify(entry)} is not user=rights`);
    acl[entry.slice(0, at)] = entry.slice(at + 1);
  }
  return acl;
}
