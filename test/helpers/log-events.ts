// The JSON lines of a log that another process or a stream in the background may be writing while
// a test reads it: its last line may be half-written (serve.test.ts failed in CI with 'Unexpected
// end of JSON input', afa4979), so only whole lines, those ending in a newline, are parsed; each of
// them strictly. A log whose writer has ended is better read whole (a torn last line is a finding).
import { readFileSync } from 'node:fs';

/** One line of the daemon's log (src/daemon/log.ts): an event, a level and what the event says. */
export type LogEvent = Record<string, unknown> & { event?: string; level?: string };

/** The whole lines of the log at `path` so far, parsed; none while the file does not exist yet. */
export function logEvents<T = LogEvent>(path: string): T[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  return text.split('\n').slice(0, -1).map((line) => JSON.parse(line) as T);
}
