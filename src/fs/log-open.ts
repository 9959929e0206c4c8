// serve's check of its --log file before it takes the store (apart from socket-file.ts, which an
// append loads: test/cli/start-up.test.ts).
import { promises as fsp } from 'node:fs';
import { MailstoreError, fromSystemError } from '../errors.js';

/**
 * Opens the --log file once before the daemon takes its store: one it can never append to (a
 * directory given for the file, a file of another user, a read-only mount) stops the start. The
 * log's stream alone reported it on stderr, and the daemon served on with no log at all.
 */
export async function refuseUnwritableLog(path: string): Promise<void> {
  const outcome = 'the daemon did not start: give --log a file it may append to, or leave --log out to log on stderr';
  const handle = await fsp.open(path, 'a', 0o640).catch((error: unknown) => {
    const failure = fromSystemError(error, 'opening the log', path, outcome);
    throw failure.message.includes(outcome) ? failure : new MailstoreError(failure.code, `${failure.message}; ${outcome}`, { path, cause: error });
  });
  await handle.close();
}
