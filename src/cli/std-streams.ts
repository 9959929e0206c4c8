// The CLI's handlers on stdout and stderr, attached when node first creates each stream rather than
// at start. Creating process.stderr when it is a pipe (an MTA's delivery command, the bench, cron)
// builds a net.Socket and loads node's net and duplex stream modules, and an append that succeeds
// writes nothing there (issue 16: a short command's start-up). So main() no longer touches a stream
// to put its handler on, and the exit flushes only the streams that exist.
import { isFileOrNull } from '../fs/stdout-file.js';

type StreamName = 'stdout' | 'stderr';

const hooks: Record<StreamName, Array<(stream: NodeJS.WriteStream) => void>> = { stdout: [], stderr: [] };
/** The streams handed out since the getter was wrapped, each with its hooks run once. */
const created = new Map<StreamName, NodeJS.WriteStream>();
const wrapped = new Set<StreamName>();

/**
 * Runs `hook` on process[name] once, when the stream is first asked for (by anyone: a command's write,
 * node's own warnings), before the caller gets it; at once if it has been asked for already. A hook
 * given again is not run again.
 */
export function whenCreated(name: StreamName, hook: (stream: NodeJS.WriteStream) => void): void {
  wrapGetter(name);
  // the same hook asked for again (main() run twice in one process) is already on the stream
  if (hooks[name].includes(hook)) return;
  hooks[name].push(hook);
  const stream = created.get(name);
  if (stream) hook(stream);
}

/**
 * Set by the executable (main.ts) only: a process that runs commands among other work (the
 * in-process tests, which capture process.stdout.write) keeps every write on node's stream.
 */
let directStdoutAllowed = false;
let stdoutFileOrNull: boolean | undefined;

/** The CLI as run: its output may skip node's stream where fd 1 is a file or /dev/null (stdout-file.ts). */
export function allowDirectStdout(): void {
  directStdoutAllowed = true;
}

/**
 * Whether a command's output goes to fd 1 with write(2) (stdout-file.ts): in the executable, while
 * node's stream is not made, for a regular file or /dev/null. Once made (something wrote through
 * it), the stream keeps the output in the order it was written.
 */
export function stdoutDirect(): boolean {
  return directStdoutAllowed && !created.has('stdout') && (stdoutFileOrNull ??= isFileOrNull(1));
}

/** The standard streams that exist (were asked for since whenCreated): the only ones with output to flush. */
export function createdStreams(): NodeJS.WriteStream[] {
  return [...created.values()];
}

function wrapGetter(name: StreamName): void {
  if (wrapped.has(name)) return;
  const original = Object.getOwnPropertyDescriptor(process, name);
  // node defines both as configurable getters that make the stream on first use; anything else
  // (a test's replacement) is a stream already there: hook it now
  if (!original?.get || !original.configurable) {
    created.set(name, process[name]);
    wrapped.add(name);
    return;
  }
  const get = original.get;
  Object.defineProperty(process, name, {
    configurable: true,
    enumerable: original.enumerable,
    get() {
      const stream = get.call(process) as NodeJS.WriteStream;
      if (created.get(name) !== stream) {
        created.set(name, stream);
        for (const hook of hooks[name]) hook(stream);
      }
      return stream;
    },
  });
  wrapped.add(name);
}
