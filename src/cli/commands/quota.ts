// `mailstore quota set|get|list`: storage and message quotas per quota root (as in Cyrus: a root
// such as user/alice covers every mailbox at or below it). Limits are journaled; appends, copies
// and moves into a root over its quota fail with OVER_QUOTA (exit 2, or 75 with append --sysexits).
import type { Command } from 'commander';
import { MailstoreError } from '../../errors.js';
import { procedures } from '../../daemon/procedures.js';
import { printJson, printLine, wantsJson, withReadStore, withStore } from '../context.js';
import { parseBytes, parseCount } from '../dates.js';

export function register(program: Command): void {
  const quota = program.command('quota').description('per-root storage and message quotas (Cyrus quota roots, e.g. user/alice)');

  quota
    .command('set <root>')
    .description('set the quota of ROOT; durable (journaled) when it returns. "none" removes a limit')
    .option('--storage <bytes>', 'most bytes of messages below ROOT (suffix K, M, G allowed), or "none"')
    .option('--messages <n>', 'most messages below ROOT, or "none"')
    .option('--json', 'print the resulting quota and usage as JSON')
    .action(async (root: string, options: { storage?: string; messages?: string }, command: Command) => {
      if (options.storage === undefined && options.messages === undefined) throw new MailstoreError('INVALID', 'give --storage and/or --messages');
      const report = await withStore(command, async (store) => {
        const { getQuota, changeQuota } = procedures(store);
        const storage = options.storage === undefined ? undefined : options.storage === 'none' ? null : parseBytes(options.storage, '--storage');
        const messages = options.messages === undefined ? undefined : options.messages === 'none' ? null : parseCount(options.messages, '--messages');
        await changeQuota(root, { storage, messages });
        return getQuota(root);
      });
      if (wantsJson(command)) return printJson(report);
      await printLine(formatReport(report));
    });

  quota
    .command('get <root>')
    .description('show the limits of ROOT and what counts against it: the mailboxes at or below it, but for those below a nested root (they count against that one). A mailbox that is no root of its own shows the nearest root above it that limits it (IMAP GETQUOTAROOT)')
    .option('--json', 'print {root, storage?, messages?, usedBytes, usedMessages, mailbox?} (mailbox: the name asked about, when root is the nearer root above it)')
    .action(async (root: string, _options: unknown, command: Command) => {
      const report = await withReadStore(command, (store) => procedures(store).getQuota(root, { nearest: true }));
      if (wantsJson(command)) return printJson(report);
      await printLine(formatReport(report));
    });

  quota
    .command('list')
    .description('every root that has a quota, with its limits and usage')
    .option('--json', 'print an array of quota reports')
    .action(async (_options: unknown, command: Command) => {
      const reports = await withReadStore(command, async (store) => {
        const out = [];
        const { getQuota, listQuotas } = procedures(store);
        for (const { root } of await listQuotas()) out.push(await getQuota(root));
        return out;
      });
      if (wantsJson(command)) return printJson(reports);
      for (const report of reports) await printLine(formatReport(report));
    });
}

function formatReport(r: { root: string; storage?: number; messages?: number; usedBytes: number; usedMessages: number; mailbox?: string }): string {
  return `${r.mailbox ? `${r.mailbox} counts against ` : ''}${r.root}: storage ${r.usedBytes} of ${r.storage ?? 'unlimited'} bytes, messages ${r.usedMessages} of ${r.messages ?? 'unlimited'}`;
}
