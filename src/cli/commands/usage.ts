// `mailstore usage [--user NAME]`: messages, bytes and unique bytes per user (user/NAME/...), with
// the user's quota when one is set. Reads the index only.
import type { Command } from 'commander';
import { procedures } from '../../daemon/procedures.js';
import { printJson, printLine, wantsJson, withReadStore } from '../context.js';

export function register(program: Command): void {
  program
    .command('usage')
    .description('messages, bytes and unique bytes (distinct bodies) per user, i.e. per tree user/NAME/..., with quotas; changes nothing')
    .option('--user <name>', 'only this user (--json then prints one object, not an array)')
    .option('--json', 'print {user, mailboxes, messages, bytes, uniqueBytes, quota?} (an array without --user)')
    .action(async (options: { user?: string }, command: Command) => {
      const list = await withReadStore(command, (store) => procedures(store).usage({ user: options.user }));
      if (wantsJson(command)) return printJson(options.user === undefined ? list : list[0]);
      for (const u of list) {
        const quota = u.quota ? `  quota ${u.quota.storage ?? '-'} bytes, ${u.quota.messages ?? '-'} messages` : '';
        await printLine(`${u.user}: ${u.mailboxes} mailboxes, ${u.messages} messages, ${u.bytes} bytes (${u.uniqueBytes} unique)${quota}`);
      }
    });
}
