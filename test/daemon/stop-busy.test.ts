// SIGTERM while the event loop is busy (a long call's part holding it for seconds): the socket
// file's removal, done in the thread pool, answers at once but is seen only once the loop turns.
// That is not a hung mount: no socket-not-removed warning, and the file is gone.
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { daemonLimits } from '../../src/limits.js';
import { logEvents } from '../helpers/log-events.js';
import { answeredWithinFreeTime } from '../../src/daemon/server.js';
import { startDaemon } from './helpers.js';

const wait = daemonLimits.socketRemoveWaitMs;
afterEach(() => { daemonLimits.socketRemoveWaitMs = wait; });

describe('the daemon stopping on a busy event loop', () => {
  it('a loop held past socketRemoveWaitMs while the socket file is removed: removed, no socket-not-removed warning', async () => {
    daemonLimits.socketRemoveWaitMs = 100;
    const running = await startDaemon();
    const stopped = running.server.stop();
    const until = Date.now() + 4 * daemonLimits.socketRemoveWaitMs;
    while (Date.now() < until) { /* the loop held, as by a big expunge's part */ }
    await stopped;
    (running.server as unknown as { logger: { flush(sync: boolean): void } }).logger.flush(true); // info lines are gathered
    expect(existsSync(running.socket)).toBe(false);
    const events = logEvents(running.log).map((line) => line.event);
    expect(events).toContain('stopped');
    expect(events).not.toContain('socket-not-removed');
  });
});

describe('answeredWithinFreeTime', () => {
  it('false for work that never answers once the loop was free that long; a held loop counts nothing', async () => {
    expect(await answeredWithinFreeTime(new Promise(() => undefined), 50, 1000, 10)).toBe(false);
    let done!: () => void;
    const work = new Promise<void>((resolve) => { done = resolve; });
    const answered = answeredWithinFreeTime(work, 50, 5000, 10);
    const until = Date.now() + 200;
    setTimeout(() => done(), 0); // answered while the loop is held below
    while (Date.now() < until) { /* held */ }
    expect(await answered).toBe(true);
    await expect(answeredWithinFreeTime(Promise.reject(new Error('EACCES')), 50)).rejects.toThrow('EACCES');
  });
});
