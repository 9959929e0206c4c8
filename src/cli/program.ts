// The `mailstore` program: a thin layer over the library for the people who run mail servers.
// One file per command in commands/; this file wires them up and turns every error into one
// stderr line and a documented exit code (exit-codes.ts). main.ts runs it.
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { isMailstoreError } from '../errors.js';
import { nodeFileSystem } from '../fs/node-fs.js';
import * as acl from './commands/acl.js';
import * as append from './commands/append.js';
import * as compact from './commands/compact.js';
import * as backup from './commands/backup.js';
import * as backups from './commands/backups.js';
import * as bench from './commands/bench.js';
import * as copy from './commands/copy.js';
import * as events from './commands/events.js';
import * as exportCommand from './commands/export.js';
import * as expunge from './commands/expunge.js';
import * as fetch from './commands/fetch.js';
import * as flags from './commands/flags.js';
import * as importCommand from './commands/import.js';
import * as init from './commands/init.js';
import * as mailbox from './commands/mailbox.js';
import * as messages from './commands/messages.js';
import * as move from './commands/move.js';
import * as quota from './commands/quota.js';
import * as reconstruct from './commands/reconstruct.js';
import * as restore from './commands/restore.js';
import * as scrub from './commands/scrub.js';
import * as search from './commands/search.js';
import * as serve from './commands/serve.js';
import * as stats from './commands/stats.js';
import * as consumers from './commands/consumers.js';
import * as tier from './commands/tier.js';
import * as snapshot from './commands/snapshot.js';
import * as replica from './commands/replica.js';
import * as promote from './commands/promote.js';
import * as xfer from './commands/xfer.js';
import { limits } from '../limits.js';
import * as usage from './commands/usage.js';
import * as user from './commands/user.js';
import { DEFAULT_STORE_DIR, parseWaitSeconds } from './context.js';
import { EXIT, exitCodeFor, exitCodesHelp } from './exit-codes.js';

/** A command module: `register` adds its command (and subcommands) to the program. */
export interface CommandModule {
  register(program: Command): void;
}

const COMMANDS: CommandModule[] = [
  init, mailbox, append, fetch, messages, search, flags, expunge, copy, move, acl, user, quota, usage,
  importCommand, exportCommand, stats, scrub, reconstruct, consumers, events, tier, compact, backup, backups, restore, snapshot, serve, replica, promote, xfer, bench,
];

export async function buildProgram(): Promise<Command> {
  const program = new Command('mailstore');
  program
    .description('A crash-safe, content-addressed message spool for mail servers.')
    .option('--store <dir>', `the store directory (default: $MAILSTORE_DIR, else ${DEFAULT_STORE_DIR})`)
    .option('--wait <seconds>', `while another process holds the store, wait up to this long for it before failing LOCKED (default ${limits.cliLockWaitSeconds})`, parseWaitSeconds)
    .option('--no-wait', 'fail LOCKED at once when another process holds the store')
    .exitOverride()
    .configureOutput({ outputError: () => {} }) // main() prints the one-line error itself
    .addHelpText('after', `\n${exitCodesHelp()}`);
  const version = await packageVersion();
  if (version) program.version(version);
  for (const command of COMMANDS) command.register(program);
  return program;
}

async function packageVersion(): Promise<string | undefined> {
  try {
    const path = fileURLToPath(new URL('../../../package.json', import.meta.url));
    return (JSON.parse((await nodeFileSystem.readFile(path)).toString('utf8')) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

/** Runs the command line; returns the exit code (the caller sets it, so stdout drains first). */
export async function main(argv: string[]): Promise<number> {
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? EXIT.ok); // the reader went away (| head)
    throw error;
  });
  try {
    const program = await buildProgram();
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (error) {
    return reportError(error);
  }
}

function reportError(error: unknown): number {
  if (error instanceof CommanderError) {
    if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return EXIT.ok;
    if (error.code === 'commander.help' || error.code === 'commander.executeSubCommandAsync') return EXIT.invalid; // no command given
    process.stderr.write(`mailstore: INVALID: ${error.message.replace(/^error: /, '')} (see mailstore --help)\n`);
    return EXIT.invalid;
  }
  if (isMailstoreError(error)) {
    process.stderr.write(`mailstore: ${error.code}: ${error.message}\n`);
    if (process.env.MAILSTORE_DEBUG && error.cause) process.stderr.write(`${String((error.cause as Error).stack ?? error.cause)}\n`);
    return exitCodeFor(error);
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`mailstore: INTERNAL: ${message} (a bug; MAILSTORE_DEBUG=1 shows the stack)\n`);
  if (process.env.MAILSTORE_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
  return EXIT.internal;
}
