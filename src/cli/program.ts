// The `mailstore` program: a thin layer over the library for the people who run mail servers.
// One file per command in commands/; this file wires them up and turns every error into one
// stderr line and a documented exit code (exit-codes.ts). main.ts runs it.
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { MailstoreError, isMailstoreError } from '../errors.js';
import { nodeFileSystem } from '../fs/node-fs.js';
import { stallReportMs, startStallWatchAfter } from '../fs/stall-watch-later.js';
import { journalPrefix } from '../fs/journal-stream.js';
import { limits } from '../limits.js';
import { printable } from '../printable.js';
import { DEFAULT_STORE_DIR, jsonWanted, noteStdoutFailure, parseWaitSeconds, printJsonError, startOutput } from './context.js';
import { whenCreated } from './std-streams.js';
import { EXIT, exitCodeFor, exitCodesHelp } from './exit-codes.js';
import { StoppedWaiting, sighupIgnored } from './interrupt.js';
import { SYSEXITS, sysexitsWanted } from './sysexits.js';

/** A command module: `register` adds its command (and subcommands) to the program. */
export interface CommandModule {
  register(program: Command): void;
}

/**
 * Every top-level command and how to load its module, in the order `--help` lists them. A command
 * line that names one of them loads only that module (and what it imports): loading all nineteen
 * with their dependencies took ~40 ms of a ~190 ms `append` (issue 16); help, an unknown command or
 * none loads them all, so commander can list or suggest them.
 */
const COMMANDS: Array<[name: string, load: () => Promise<CommandModule>]> = [
  ['init', () => import('./commands/init.js')],
  ['mailbox', () => import('./commands/mailbox.js')],
  ['append', () => import('./commands/append.js')],
  ['fetch', () => import('./commands/fetch.js')],
  ['messages', () => import('./commands/messages.js')],
  ['search', () => import('./commands/search.js')],
  ['flags', () => import('./commands/flags.js')],
  ['expunge', () => import('./commands/expunge.js')],
  ['clock', () => import('./commands/clock.js')],
  ['copy', () => import('./commands/copy.js')],
  ['move', () => import('./commands/move.js')],
  ['acl', () => import('./commands/acl.js')],
  ['user', () => import('./commands/user.js')],
  ['quota', () => import('./commands/quota.js')],
  ['usage', () => import('./commands/usage.js')],
  ['import', () => import('./commands/import.js')],
  ['export', () => import('./commands/export.js')],
  ['stats', () => import('./commands/stats.js')],
  ['scrub', () => import('./commands/scrub.js')],
  ['reconstruct', () => import('./commands/reconstruct.js')],
  ['rebuild-from-bucket', () => import('./commands/rebuild-from-bucket.js')],
  ['consumers', () => import('./commands/consumers.js')],
  ['events', () => import('./commands/events.js')],
  ['tier', () => import('./commands/tier.js')],
  ['compact', () => import('./commands/compact.js')],
  ['backup', () => import('./commands/backup.js')],
  ['backups', () => import('./commands/backups.js')],
  ['restore', () => import('./commands/restore.js')],
  ['snapshot', () => import('./commands/snapshot.js')],
  ['config', () => import('./commands/config.js')],
  ['serve', () => import('./commands/serve.js')],
  ['replica', () => import('./commands/replica.js')],
  ['promote', () => import('./commands/promote.js')],
  ['xfer', () => import('./commands/xfer.js')],
  ['bench', () => import('./commands/bench.js')],
];

/** Global options that take a value: their value is not the command's name. */
const GLOBAL_OPTIONS_WITH_VALUE = new Set(['--store', '--wait']);

/** The command the arguments (after node and the script) name, when it is one of COMMANDS. */
export function namedCommand(args: string[]): string | undefined {
  const [first] = leadingWords(args, 1);
  return first !== undefined && isCommand(first) ? first : undefined;
}

const isCommand = (word: string): boolean => COMMANDS.some(([name]) => name === word);

/** Up to `count` words from the first that is no global option (nor its value), before any `--`. */
function leadingWords(args: string[], count: number): string[] {
  const words: string[] = [];
  for (let i = 0; i < args.length && args[i] !== '--'; i++) {
    const arg = args[i];
    if (words.length > 0 || !arg.startsWith('-')) {
      if (!arg.startsWith('-')) words.push(arg);
      if (words.length === count) break;
    } else if (GLOBAL_OPTIONS_WITH_VALUE.has(arg)) i++; // `--store DIR`; `--store=DIR` is one argument
  }
  return words;
}

/** `mailstore help WORD` where WORD is no command: the WORD (commander shows the whole help and fails). */
function unknownHelpTopic(args: string[]): string | undefined {
  const [first, second] = leadingWords(args, 2);
  return first === 'help' && second !== undefined && !isCommand(second) ? second : undefined;
}

/** `argv` as process.argv (node, script, arguments); without it every command is registered. */
export async function buildProgram(argv?: string[]): Promise<Command> {
  const program = new Command('mailstore');
  program
    .description('A crash-safe, content-addressed message spool for mail servers.')
    .option('--store <dir>', `the store directory (default: $MAILSTORE_DIR, else ${DEFAULT_STORE_DIR})`)
    .option('--wait <seconds>', `while another process holds the store, wait up to this long for it before failing LOCKED (default ${limits.cliLockWaitSeconds})`, parseWaitSeconds)
    .option('--no-wait', 'fail LOCKED at once when another process holds the store')
    .exitOverride()
    .configureOutput({ outputError: () => {} }) // main() prints the one-line error itself
    .addHelpText('after', `\n${exitCodesHelp()}`);
  const only = argv ? namedCommand(argv.slice(2)) : undefined;
  if (only === undefined) { // help, --version, an unknown command or none: everything commander may show
    const version = await packageVersion();
    if (version) program.version(version);
  }
  const wanted = COMMANDS.filter(([name]) => only === undefined || name === only);
  const modules = await Promise.all(wanted.map(([, load]) => load()));
  for (const command of modules) command.register(program);
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

/** The handlers go on each stream when it is created (std-streams.ts: an append writes no stderr). */
function hookOutputStreams(): void {
  // The reader went away (| head). Any other failure (ENOSPC, EIO) reaches the command through its
  // write (writeStdout), or main.ts reports it (help, --version): thrown from here it was an
  // uncaught exception, a stack trace and exit 1.
  whenCreated('stdout', listenForStdoutFailure);
  // stderr gone too (its reader exited: `2>&1 | head`, a cron or service pipe that closed): the
  // command goes on and exits with its own code. Unhandled, the first warning (an import's skipped
  // file, a daemon's log line) threw EPIPE: the import stopped there with exit 1, which reads as
  // "finished, some entries skipped", and the daemon died. There is nowhere left to say anything.
  whenCreated('stderr', ignoreStderrFailure);
}
// Named once, so a second main() in the same process (tests run commands in-process; a tool may
// too) finds its hooks already there: a new arrow per call put one more 'error' listener on the
// process's stderr each time, and node's leak warning at the 11th landed in a command's stderr.
const listenForStdoutFailure = (stream: NodeJS.WriteStream) => { stream.on('error', noteStdoutFailure); };
const ignoreStderrFailure = (stream: NodeJS.WriteStream) => { stream.on('error', ignoreError); };
const ignoreError = () => {};

const keepInspectorShut = () => {};
const ignoreSighup = () => {};

/** Runs the command line; returns the exit code (the caller sets it, so stdout drains first). */
export async function main(argv: string[]): Promise<number> {
  startOutput(); // main may run more than one command line in a process (tests run them in theirs)
  hookOutputStreams();
  // node starts its inspector on SIGUSR1: the daemon (or a long import) then listened on
  // 127.0.0.1:9229, where any local user could run code as the store's user. A listener of our own
  // keeps it shut; serve reopens its log on it, as on SIGHUP (the signal nginx and Dovecot take).
  if (!process.listeners('SIGUSR1').includes(keepInspectorShut)) process.on('SIGUSR1', keepInspectorShut); // once: main may run again in this process
  if (sighupIgnored() && !process.listeners('SIGHUP').includes(ignoreSighup)) process.on('SIGHUP', ignoreSighup); // started under nohup (interrupt.ts)
  let stopStallWatch = (): void => undefined;
  try {
    // a command on a hung mount says so on stderr, naming the call and the path, instead of waiting
    // silently for ever (src/fs/stall-watch.ts); MAILSTORE_STALL_REPORT_SECONDS checked here, at once
    stopStallWatch = startStallWatchAfter(limits.cliStallWatchDelayMs, { format: 'text', reportMs: stallReportMs() });
    // U+FFFD in an argument: was it typed so, or did it stand for bytes that are not UTF-8? (argv-utf8.ts)
    if (argv === process.argv && argv.some((arg) => arg.includes('\ufffd'))) (await import('./argv-utf8.js')).refuseArgumentsNotUtf8();
    const program = await buildProgram(argv);
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (error) {
    const reported = reportError(error, argv.slice(2));
    if (reported.exitCode === EXIT.ok) return EXIT.ok;
    // An MTA's delivery command that cannot run as written (a typo in mailbox_command) is the
    // admin's to fix, as a missing store is: exit 5 is no sysexits code, and Postfix bounced the mail.
    const exitCode = appendWithSysexits(argv) ? SYSEXITS.tempFail : reported.exitCode;
    if (jsonWanted(argv.slice(2)) && exitCode !== EXIT.interrupted) await printJsonError(reported.error, exitCode);
    return exitCode;
  } finally {
    stopStallWatch();
  }
}

/** `append --sysexits` (or MAILSTORE_SYSEXITS=1): its failures, the command line's too, are sysexits.h codes. */
function appendWithSysexits(argv: string[]): boolean {
  const args = argv.slice(2);
  return namedCommand(args) === 'append' && sysexitsWanted(args.includes('--sysexits'));
}

/** Writes the error's stderr line; returns its exit code and the error as reported (a bad command line as INVALID). */
function reportError(error: unknown, args: string[]): { exitCode: number; error: unknown } {
  if (error instanceof CommanderError) {
    if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return { exitCode: EXIT.ok, error };
    // `mailstore help [COMMAND]` asked for it (exit 0 from commander); with no command given it is 1
    if (error.code === 'commander.help' && error.exitCode === 0) return { exitCode: EXIT.ok, error };
    // `mailstore help delet`: commander showed the whole help, and nothing said the word is no command
    const topic = error.code === 'commander.help' ? unknownHelpTopic(args) : undefined;
    if (topic === undefined && (error.code === 'commander.help' || error.code === 'commander.executeSubCommandAsync')) { // no command given: commander showed the help
      return { exitCode: EXIT.invalid, error: new MailstoreError('INVALID', 'no command given (see mailstore --help)') };
    }
    // commander puts its suggestion on a line of its own, which the one-line report showed as '\n'
    const said = error.message.replace(/^error: /, '').replace(/\n(?=\(Did you mean )/, ' ');
    const invalid = new MailstoreError('INVALID', `${topic === undefined ? said : `unknown command '${topic}'`} (see mailstore --help)`);
    process.stderr.write(`${journalPrefix('error')}mailstore: INVALID: ${printable(invalid.message)}\n`);
    return { exitCode: EXIT.invalid, error: invalid };
  }
  if (error instanceof StoppedWaiting) { // Ctrl-C answered: main ends the process by that signal
    process.stderr.write(`mailstore: ${printable(error.message)}\n`);
    return { exitCode: EXIT.interrupted, error };
  }
  if (isMailstoreError(error)) {
    // the message names paths and names from the world (a file in an imported folder): one line, nothing a terminal obeys
    process.stderr.write(`${journalPrefix('error')}mailstore: ${error.code}: ${printable(error.message)}\n`);
    if (process.env.MAILSTORE_DEBUG && error.cause) process.stderr.write(`${String((error.cause as Error).stack ?? error.cause)}\n`);
    return { exitCode: exitCodeFor(error), error };
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`${journalPrefix('error')}mailstore: INTERNAL: ${printable(message)} (a bug; MAILSTORE_DEBUG=1 shows the stack)\n`);
  if (process.env.MAILSTORE_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
  return { exitCode: EXIT.internal, error };
}
