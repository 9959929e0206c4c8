// `mailstore tier flush|status`: the object-storage tier (docs/OBJECT-STORAGE.md). Flush seals the
// open pack and moves every sealed pack the policy lets go to the bucket (uploaded, read back and
// compared, recorded in the journal, and only then removed locally); status says where the bytes are.
import type { Command } from 'commander';
import { procedures } from '../../daemon/procedures.js';
import { MailstoreError } from '../../errors.js';
import { parseDuration, parseSize } from '../../store/tier-policy.js';
import { formatBytes } from '../progress.js';
import { printJson, printLine, wantsJson, withReadStore, withStore } from '../context.js';

const parseBytes = (text: string) => parseSize(text, '--keep-local');
/** A setting of `tier set`: 'default' clears it (null). Parsed in the action: commander turns a parser's null into ''. */
const orDefault = (text: string | undefined, parse: (text: string) => number): number | null | undefined => (text === undefined ? undefined : text === 'default' ? null : parse(text));
const formatMs = (ms: number) => (ms % 86_400_000 === 0 ? `${ms / 86_400_000}d` : ms % 3_600_000 === 0 ? `${ms / 3_600_000}h` : `${ms / 1000}s`);

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
    .command('set')
    .description('change the move policy kept in the store; a running daemon applies it at its next round')
    .option('--local-bytes-max <size>', "keep at most this much of the packs local, the open pack included, newest kept (e.g. 20G); 'default': 10 % of all pack bytes")
    .option('--move-after <duration>', "a sealed pack not written for this long moves even within the budget (e.g. 30d, 12h); 'default': 7d")
    .option('--json', 'print the policy as JSON')
    .action(async (options: { localBytesMax?: string; moveAfter?: string }, command: Command) => {
      if (options.localBytesMax === undefined && options.moveAfter === undefined) throw new MailstoreError('INVALID', 'tier set: give --local-bytes-max and/or --move-after');
      const change = {
        localBytesMax: orDefault(options.localBytesMax, (t) => parseSize(t, '--local-bytes-max')),
        moveAfterMs: orDefault(options.moveAfter, (t) => parseDuration(t, '--move-after')),
      };
      const policy = await withStore(command, (store) => procedures(store).tierSetPolicy(change));
      if (wantsJson(command)) return printJson(policy);
      await printLine(`local budget ${policy.localBytesMax === undefined ? '10 % of all pack bytes (default)' : formatBytes(policy.localBytesMax)}; cold after ${policy.moveAfterMs === undefined ? '7d (default)' : formatMs(policy.moveAfterMs)}`);
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
      await printLine(`policy  local budget ${status.policy.localBytesMax === null ? `${status.policy.localShareDefault * 100} % of all pack bytes` : formatBytes(status.policy.localBytesMax)}, cold after ${formatMs(status.policy.moveAfterMs)}`);
    });
}
