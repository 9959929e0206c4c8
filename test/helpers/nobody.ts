// Tests that run the built store or CLI as user `nobody` (root ignores file modes) need nobody to
// reach the build: a checkout under a directory closed to other users (a clone under /root, as
// CI's; a mktemp -d) cannot be run by it, and those tests say so and skip instead of failing.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

/** setpriv's arguments that run the rest of its command line as nobody:nogroup with no other groups. */
export const AS_NOBODY = ['--reuid=nobody', '--regid=nogroup', '--clear-groups'];

/**
 * Why a run as nobody of `path` (a built file) cannot happen here, or undefined when it can: not
 * root, no setpriv, the build missing, or nobody cannot reach it.
 */
export function nobodyCannotReach(path: string): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (setpriv)';
  if (spawnSync('sh', ['-c', 'command -v setpriv']).status !== 0) return 'setpriv is missing (util-linux)';
  if (!existsSync(path)) return `${path} missing: run npm run build`;
  const probe = spawnSync('setpriv', [...AS_NOBODY, process.execPath, '-e', `require('fs').accessSync(${JSON.stringify(path)})`]);
  return probe.status === 0 ? undefined : `user nobody cannot reach ${path} (the checkout is under a directory closed to other users: a clone under /root, a mktemp -d)`;
}
