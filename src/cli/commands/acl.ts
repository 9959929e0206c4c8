// `mailstore acl set|get|list`: RFC 4314 rights per mailbox, and the reverse view per user.
import type { Command } from 'commander';
import { normalizeIdentifier } from '../../store/validate.js';
import { printJson, printLine, wantsJson, withReadStore, withStore } from '../context.js';

export function register(program: Command): void {
  const acl = program.command('acl').description('set and show access rights (RFC 4314 letters: lrswipkxtean; the obsolete c and d are stored as kx and et)');

  acl
    .command('set <mailbox> <user> <rights>')
    .description('set the rights of USER (or "anyone", or "-USER" for negative rights) on MAILBOX; "" removes the entry, +RIGHTS adds to it, -RIGHTS takes from it (after "--": acl set MAILBOX USER -- -w). Durable, with the reverse ACL map, when it returns')
    .option('--json', 'print the resulting ACL as JSON')
    .action(async (mailbox: string, user: string, rights: string, _options: unknown, command: Command) => {
      const result = await withStore(command, async (store) => {
        await store.setAcl(mailbox, user, rights);
        return store.getAcl(mailbox);
      });
      if (wantsJson(command)) return printJson({ mailbox, acl: result });
      // the entry as the store keys it (NFC): a name typed decomposed would find no rights
      await printLine(rights === '' ? `removed ${user} from the ACL of ${mailbox}` : `${user} has "${result[normalizeIdentifier(user)] ?? ''}" on ${mailbox}`);
    });

  acl
    .command('get <mailbox> [user]')
    .description('show the ACL of MAILBOX, or the rights of one USER on it; changes nothing')
    .option('--json', 'print as JSON')
    .action(async (mailbox: string, user: string | undefined, _options: unknown, command: Command) => {
      const result = await withReadStore(command, (store) => store.getAcl(mailbox));
      if (user !== undefined) {
        const who = normalizeIdentifier(user);
        if (wantsJson(command)) return printJson({ mailbox, user: who, rights: result[who] ?? '' });
        return printLine(result[who] ?? '');
      }
      if (wantsJson(command)) return printJson({ mailbox, acl: result });
      for (const [who, rights] of Object.entries(result).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) await printLine(`${who}\t${rights}`);
    });

  acl
    .command('list <user> [pattern]')
    .description('the mailboxes USER may see (l right, theirs or anyone\'s, less the negative rights of -USER and -anyone) with their rights, from the reverse ACL map; changes nothing')
    .option('--json', 'print as JSON')
    .action(async (user: string, pattern: string | undefined, _options: unknown, command: Command) => {
      const result = await withReadStore(command, (store) => store.listMailboxes({ user, pattern }));
      if (wantsJson(command)) return printJson(result);
      for (const entry of result) await printLine(`${entry.name}\t${entry.rights ?? ''}`);
    });
}
