// The loop behind the store's background tasks (src/store/backoff-loop.ts): a round that rejects
// (its error hook threw: a caller's) must not become an unhandled rejection, which ends a server's
// process under node's default; it counts as a round that did nothing (backed off) and the loop goes on.
import { afterEach, describe, expect, it } from 'vitest';
import { BackoffLoop } from '../../src/store/backoff-loop.js';

class Failing extends BackoffLoop {
  rounds = 0;
  protected async round(): Promise<boolean> {
    this.rounds++;
    throw new Error('a hook threw');
  }
}

const unhandled: unknown[] = [];
const record = (reason: unknown) => { unhandled.push(reason); };
afterEach(() => { process.off('unhandledRejection', record); });

describe('BackoffLoop', () => {
  it('a rejecting round is no unhandled rejection: the loop backs off, goes on, and stops cleanly', async () => {
    process.on('unhandledRejection', record);
    const loop = new Failing(5, 20);
    await new Promise((r) => setTimeout(r, 150));
    await loop.stop();
    await new Promise((r) => setTimeout(r, 20)); // a rejection would be reported by now
    expect(unhandled).toEqual([]);
    expect(loop.rounds).toBeGreaterThanOrEqual(3); // it went on after the first failure
    expect(loop.rounds).toBeLessThan(30); // backed off (5, 10, 20, 20 ms ...), not every 5 ms
  });
});
