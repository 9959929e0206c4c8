// Tells systemd (Type=notify: NOTIFY_SOCKET in the environment) when `serve` really serves: with
// Type=simple, units ordered after mailstore.service (Postfix's, a replica's) started before its
// socket and LMTP listener existed. Node cannot send a unix datagram without a native module, so
// systemd's own `systemd-notify` sends it, from a child process: the unit needs NotifyAccess=all.
// systemd-notify waits until systemd has taken the message (its barrier), so it is never lost to a
// child that exits before systemd looks at who sent it.
import { execFile } from 'node:child_process';
import { daemonLimits } from '../limits.js';

/** Where a failed notification is told (the daemon's logger). */
export type NotifyFailed = (assignments: string[], error: Error) => void;

/** Sends `assignments` (READY=1, STATUS=..., EXTEND_TIMEOUT_USEC=...) when systemd asked for them; else nothing. */
export function notifySystemd(assignments: string[], failed: NotifyFailed): Promise<void> {
  if (!process.env.NOTIFY_SOCKET) return Promise.resolve();
  return new Promise((done) => {
    execFile('systemd-notify', assignments, { timeout: daemonLimits.systemdNotifyTimeoutMs }, (error, _stdout, stderr) => {
      if (error) failed(assignments, new Error(`${error.message.split('\n')[0]}${stderr ? `: ${stderr.trim()}` : ''}`));
      done();
    });
  });
}

/**
 * While the store opens (a recovery replaying a journal or rebuilding the index can take many
 * minutes on a big store): the start timeout is pushed on as long as the daemon's event loop turns,
 * so systemd does not kill a recovery that is getting on (the next start would begin it again), and
 * still ends a daemon whose loop is stuck. Returns the function that stops it.
 */
export function extendStartWhileOpening(status: string, failed: NotifyFailed): () => void {
  if (!process.env.NOTIFY_SOCKET) return () => undefined;
  const extend = () => void notifySystemd([`STATUS=${status}`, `EXTEND_TIMEOUT_USEC=${daemonLimits.systemdExtendStartMs * 1000}`], failed);
  extend();
  const timer = setInterval(extend, daemonLimits.systemdExtendStartMs / 4);
  return () => clearInterval(timer);
}
