// `mailstore tier flush|status`: the object-storage tier (docs/OBJECT-STORAGE.md). Flush seals the
// open pack and moves every sealed pack the policy lets go to the bucket (uploaded, read back and
// compared, recorded in the journal, and only then removed locally); status says where the bytes are.
import type { Command } from 'commander';
import { procedures } from '../../daemon/procedures.js';
import { MailstoreError } from '../../errors.js';
import { formatBytes } from '../progress.js';
import { printJson, printLine, wantsJson, withReadStore, withStore } from '../context.js';

function parseBytes(text: string): number {
  const m = /^(\d+)([kmgt]?)i?b?$/i.exec(text.trim());
  if (!m) throw new MailstoreError('INVALID', `--keep-local takes a size like 500M or 2G, got ${JSON.stringify(text)}`);
  return Number(m[1]) * 1024 ** ' kmgt'.indexOf((m[2] || ' ').toLowerCase());
}

export function register(program: Command): void {
  const tier = program.command('tier').description('the object-storage tier: sealed packs in an S3 bucket (init --object-store)');
  tier
    .command('flush')
    .description('seal the open pack and move sealed packs to the bucket (verified before the local copy goes)')
    .option('--keep-local <size>', 'keep the newest packs local up to this size (e.g. 2G); default: move every sealed pack', parseBytes)
    .option('--json', 'print the result as JSON')
    .action(async (options: { keepLocal?: number }, command: Command) => {
      const result = await withStore(command, (store) => procedures(store).tierFlush({
        keepLocalBytes: options.keepLocal,
        onPack: (pack, bytes) => { if (process.stderr.isTTY && !wantsJson(command)) process.stderr.write(`moved pack ${pack} (${formatBytes(bytes)})\n`); },
      }));
      if (wantsJson(command)) return printJson(result);
      await printLine(`moved ${result.packsMoved} pack${result.packsMoved === 1 ? '' : 's'} (${formatBytes(result.bytesMoved)}) in ${result.seconds.toFixed(1)} s; local ${formatBytes(result.localBytesAfter)}, in the bucket ${formatBytes(result.remoteBytes)}`);
    });
  tier
    .command('status')
    .description('how many packs and bytes are local and in the bucket')
    .option('--json', 'print as JSON')
    .action(async (_options: unknown, command: Command) => {
      const status = await withReadStore(command, (store) => procedures(store).tierStatus());
      if (wantsJson(command)) return printJson(status);
      await printLine(`bucket ${status.url}`);
      await printLine(`local   ${status.localPacks} packs, ${formatBytes(status.localBytes)} (${(status.localShare * 100).toFixed(1)} %)`);
      await printLine(`remote  ${status.remotePacks} packs, ${formatBytes(status.remoteBytes)}`);
    });
}
