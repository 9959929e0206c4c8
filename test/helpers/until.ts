// Waiting in a test for what another process or a background task does.
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Waits (at most `ms`, then fails naming `what`) until `test` holds. The bound is a hang guard, not
 * a measure: on the CI machine (2 cores, two vitest workers each spawning node children: load 4-20)
 * a node start or a store's open takes many times its idle time.
 */
export async function until(test: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  for (let waited = 0; !(await test()); waited += 50) {
    if (waited > ms) throw new Error(`never: ${what}`);
    await sleep(50);
  }
}
