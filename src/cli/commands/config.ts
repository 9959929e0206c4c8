// `mailstore config`: the settings a store keeps for every process that opens it (serve, the CLI,
// a library caller that passes no option). Today: the inline-body threshold (INLINE-BODIES,
// docs/FORMAT.md "Inline bodies"). Without an option it prints them; through the daemon when one serves the store.
import type { Command } from 'commander';
import { procedures } from '../../daemon/procedures.js';
import { MailstoreError } from '../../errors.js';
import { limits } from '../../limits.js';
import { printJson, printLine, wantsJson, withReadStore, withStore } from '../context.js';

/** --inline-bytes-max's value: a whole number of bytes (0: off), or 'default' (the setting is removed; commander turns a null into ''). */
export function parseInlineBytes(text: string): number | 'default' {
  if (text === 'default') return 'default';
  const value = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value > limits.inlineBodyBytesSettingMax) {
    throw new MailstoreError('INVALID', `--inline-bytes-max takes a whole number of bytes from 0 (off) to ${limits.inlineBodyBytesSettingMax}, or 'default'; got ${text}`);
  }
  return value;
}

export function register(program: Command): void {
  program
    .command('config')
    .description('show or change the settings the store keeps for every process that opens it (the inline-body threshold)')
    .option('--inline-bytes-max <bytes>', "messages up to this many bytes, delivered one at a time, go inside their journal record (one file, one fdatasync per delivery); 0: every body to a pack; 'default' removes the setting", parseInlineBytes)
    .option('--json', 'print as JSON')
    .addHelpText('after', `
Inline bodies (docs/FORMAT.md, "Inline bodies"): a message delivered alone and no larger than the
threshold is written inside its journal record, so a delivery writes one file and makes one
fdatasync instead of two; compaction and snapshots move such bodies into packs later. Without a
setting the threshold is ${limits.inlineBodyBytesDefault} bytes (measured: BENCHMARKS.md). A change applies to the next
delivery (a running daemon takes it at once); bodies already stored stay where they are.`)
    .action(async (options: { inlineBytesMax?: number | 'default' }, command: Command) => {
      const wanted = options.inlineBytesMax;
      const result = wanted === undefined
        ? await withReadStore(command, (store) => procedures(store).inlineBodies())
        : await withStore(command, (store) => procedures(store).inlineBodies(wanted === 'default' ? null : wanted));
      if (wantsJson(command)) return printJson(result);
      await printLine(`inline-bytes-max ${result.inlineBytesMax}${result.setting === null ? ' (default)' : ''}`);
    });
}
