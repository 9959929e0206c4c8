// `mailstore config`: the settings a store keeps for every process that opens it (serve, the CLI,
// a library caller that passes no option): the inline-body threshold (INLINE-BODIES, docs/FORMAT.md
// "Inline bodies") and the free-space reserve (FREE-SPACE-RESERVE, docs/FORMAT.md "A full disk").
// Without an option it prints them; through the daemon when one serves the store.
import type { Command } from 'commander';
import { procedures } from '../../daemon/procedures.js';
import { MailstoreError, isMailstoreError } from '../../errors.js';
import { limits } from '../../limits.js';
import { printJson, printLine, wantsJson, warn, withReadStore, withStore } from '../context.js';
import { parseBytes } from '../dates.js';
import { formatBytes } from '../progress.js';
import type { StoreOptions } from '../../store/types.js';

/** A byte count with parseBytes's suffixes (64K, 1M, 2G), or NaN: each option words its own refusal. */
function bytesOrNaN(text: string): number {
  try {
    return parseBytes(text);
  } catch {
    return NaN;
  }
}

/** --inline-bytes-max's value: bytes (with an optional K/M suffix, 0: off), or 'default' (the setting is removed; commander turns a null into ''). */
export function parseInlineBytes(text: string): number | 'default' {
  if (text === 'default') return 'default';
  const value = bytesOrNaN(text);
  if (!Number.isSafeInteger(value) || value > limits.inlineBodyBytesSettingMax) {
    throw new MailstoreError('INVALID', `--inline-bytes-max takes a number of bytes (4096, 16K) from 0 (off) to ${limits.inlineBodyBytesSettingMax}, or 'default'; got ${text}`);
  }
  return value;
}

/** --free-space-reserve's value: bytes (with an optional K/M/G suffix, 0: off), or 'default' (the setting is removed). */
export function parseReserveBytes(text: string): number | 'default' {
  if (text === 'default') return 'default';
  const value = bytesOrNaN(text);
  if (!Number.isSafeInteger(value)) {
    throw new MailstoreError('INVALID', `--free-space-reserve takes a number of bytes (64M, 1G; 0: off), or 'default'; got ${text}`);
  }
  return value;
}

/**
 * The open of a change names the settings it replaces, so that open does not read them: a damaged
 * one is CORRUPT at every other open, whose message says to set it again here (it failed the same
 * way, a dead end). Only for this short open; the new value is in force from its own call on (a
 * reserve back to the default holds none until then: the default needs the file system's size).
 */
function replacing(inline: number | 'default' | undefined, reserve: number | 'default' | undefined): StoreOptions {
  return {
    ...(inline === undefined ? {} : { inlineBodyBytesMax: inline === 'default' ? limits.inlineBodyBytesDefault : inline }),
    ...(reserve === undefined ? {} : { freeSpaceReserveBytes: reserve === 'default' ? 0 : reserve }),
  };
}

const OLDER = "the daemon runs an older mailstore: restart it with this version ('mailstore serve') to see and set this";

/**
 * A setting as shown, or (through a daemon from before its procedure: a rolling upgrade, clients
 * first) the inline threshold unknown, the reserve null: that daemon holds none. The rest is shown.
 */
function shown<T>(answer: Promise<T>, procedure: 'inlineBodies'): Promise<T | { inlineBytesMax?: undefined; setting?: undefined }>;
function shown<T>(answer: Promise<T>, procedure: 'freeSpace'): Promise<T | null>;
async function shown<T>(answer: Promise<T>, procedure: string): Promise<T | object | null> {
  try {
    return await answer;
  } catch (error) {
    if (!isMailstoreError(error, 'INVALID') || !(await import('../../client/client.js')).olderDaemonLacks(error, procedure)) throw error;
    return procedure === 'freeSpace' ? null : {};
  }
}

export function register(program: Command): void {
  program
    .command('config')
    .description('show or change the settings the store keeps for every process that opens it (the inline-body threshold, the free-space reserve)')
    .option('--inline-bytes-max <bytes>', "messages up to this many bytes, delivered one at a time, go inside their journal record (one file, one fdatasync per delivery); 0: every body to a pack; 'default' removes the setting", parseInlineBytes)
    .option('--free-space-reserve <bytes>', "refuse new mail (NO_SPACE, LMTP 452) once the store's file system has less than this free (64M, 1G; 0: off); 'default' removes the setting", parseReserveBytes)
    .option('--json', 'print as JSON')
    .addHelpText('after', `
Inline bodies (docs/FORMAT.md, "Inline bodies"): a message delivered alone and no larger than the
threshold is written inside its journal record, so a delivery writes one file and makes one
fdatasync instead of two; compaction and snapshots move such bodies into packs later. Without a
setting the threshold is ${limits.inlineBodyBytesDefault} bytes (measured: BENCHMARKS.md). A change applies to the next
delivery (a running daemon takes it at once); bodies already stored stay where they are.

The free-space reserve (docs/FORMAT.md, "A full disk"): a change that adds mail (append, LMTP,
import, restore into the store) is refused NO_SPACE before anything is written once the free space
on the store's file system, less what it would write, falls below the reserve; flags, expunges,
mailbox deletes and compaction go on down to an eighth of it, so room can be made. The store stays
open and deliveries resume by themselves once there is room. Without a setting: the smaller of
${limits.freeSpaceReserveBytesMax / 1024 / 1024} MiB and ${limits.freeSpaceReservePercent} % of the file system's size. 0 turns it off (a full disk then stops the store).`)
    .action(async (options: { inlineBytesMax?: number | 'default'; freeSpaceReserve?: number | 'default' }, command: Command) => {
      const wanted = options.inlineBytesMax;
      const reserve = options.freeSpaceReserve;
      const result = wanted === undefined && reserve === undefined
        ? await withReadStore(command, async (store) => ({ ...(await shown(procedures(store).inlineBodies(), 'inlineBodies')), freeSpace: await shown(procedures(store).freeSpace(), 'freeSpace') }))
        : await withStore(command, async (store) => {
          // each change before anything is only shown: a daemon too old for one refuses it before the other is made
          const freeSpace = reserve === undefined ? undefined : await procedures(store).freeSpace(reserve === 'default' ? null : reserve);
          const inline = wanted === undefined ? undefined : await procedures(store).inlineBodies(wanted === 'default' ? null : wanted);
          return { ...(inline ?? await shown(procedures(store).inlineBodies(), 'inlineBodies')), freeSpace: freeSpace ?? await shown(procedures(store).freeSpace(), 'freeSpace') };
        }, replacing(wanted, reserve));
      // 500G for 500M was taken in silence: the store finds out at its next delivery, and defers every one
      const space = result.freeSpace;
      if (reserve !== undefined && space?.freeBytes != null && space.reserveBytes > space.freeBytes) {
        warn(`the free-space reserve (${formatBytes(space.reserveBytes)}) is more than the store's file system has free now (${formatBytes(space.freeBytes)}): new mail is refused ` +
          `(NO_SPACE; LMTP 452, the MTA defers it) from the next delivery on. If that was not meant, set a smaller one (64M, 1G) or 'default'`);
      }
      if (wantsJson(command)) return printJson(result);
      await printLine(result.inlineBytesMax === undefined ? `inline-bytes-max unknown (${OLDER})` : `inline-bytes-max ${result.inlineBytesMax}${result.setting === null ? ' (default)' : ''}`);
      await printLine(space === null ? `free-space-reserve none (${OLDER}, before the reserve)`
        : `free-space-reserve ${space.reserveBytes}${space.setting === null ? ' (default)' : ''} (free now: ${space.freeBytes ?? 'unknown'} bytes${space.refusingMail ? ', REFUSING MAIL' : ''})`);
    });
}
