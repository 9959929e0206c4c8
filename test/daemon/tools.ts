// Outside programs the daemon tests drive (swaks, Postfix, systemd-analyze, dpkg): whether one is
// installed, and running one bounded in time.
import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';

/** Whether `command` is on PATH (or /usr/sbin, where Postfix lives). */
export function which(command: string): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin']) {
    try {
      if (dir && statSync(join(dir, command)).isFile()) return join(dir, command);
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Runs a program with a time limit; never rejects. */
export function run(command: string, args: string[], options: { timeoutMs?: number; input?: Buffer | string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = execFile(command, args, { timeout: options.timeoutMs ?? 20_000, env: options.env ?? process.env, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, output: `${stdout}${stderr}` });
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}
