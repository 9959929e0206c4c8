#!/usr/bin/env node
// The `mailstore` executable (package.json "bin"). Everything else is in program.ts, so tests and
// tools can build the program without running it. No top-level await: tools/bundle-cli.ts bundles
// this entry as CommonJS (for V8's code cache, src/fs/module-cache.ts).
import { main } from './program.js';
import { favourMainThread } from '../thread-priority.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { unreportedStdoutFailure } from './context.js';
import { journalPrefix } from '../fs/journal-stream.js';
import { printable } from '../printable.js';
import { allowDirectStdout, createdStreams } from './std-streams.js';
import { endBySignal, interruptSignal } from './interrupt.js';

// the command's own thread before V8's compiler and GC helpers and libuv's thread pool (thread-priority.ts)
favourMainThread();
// this process runs one command line: its output may go to fd 1 without node's stream (std-streams.ts)
allowDirectStdout();

let settled = false;
void main(process.argv).then(async (code) => {
  settled = true;
  process.exitCode = code;
  // The command has finished and awaited all its work (an append is durable, the store closed).
  // Exiting here skips node's teardown of the heap, which a natural exit does after the event loop
  // drains: ~6 % of an append's CPU (issue 16). Output written before is flushed first.
  // Only the streams that exist: asking for process.stderr to flush it made one (a net.Socket on a
  // pipe) in every command that wrote nothing there (std-streams.ts).
  await Promise.all(createdStreams().map(flushed));
  // help or --version that could not be written (> /dev/full) is no success
  const unwritten = code === EXIT.ok ? unreportedStdoutFailure() : undefined;
  if (unwritten) {
    process.stderr.write(`${journalPrefix('error')}mailstore: ${unwritten.code}: ${printable(unwritten.message)}\n`);
    code = exitCodeFor(unwritten);
  }
  // stopped early by Ctrl-C, SIGTERM or SIGHUP: its summary is out, and the process ends by that
  // signal, so a shell script running it stops too (interrupt.ts)
  const signal = code === EXIT.interrupted ? interruptSignal() : undefined;
  if (signal) endBySignal(signal);
  process.exit(code);
});

/** Resolves once everything written to `stream` before has been handed to the OS (or failed). */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((done) => stream.write('', () => done()));
}
// A command whose work never finished (its promise left pending with nothing keeping node alive)
// must not look like success to a script: exit 13, as node does for an unsettled top-level await.
// A deliberate process.exit (EPIPE, an interrupt, serve's shutdown) has set process.exitCode.
process.on('exit', () => {
  if (!settled && process.exitCode === undefined) process.exitCode = 13;
});
