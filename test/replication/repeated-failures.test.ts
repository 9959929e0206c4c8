// A replica's connection failing for one reason again and again (repeated-failures.ts): logged once,
// again when the reason changes, else every limits.replicationFailureRepeatLogMs with since when.
import { describe, expect, it } from 'vitest';
import { RepeatedFailures } from '../../src/replication/repeated-failures.js';
import { limits } from '../../src/limits.js';

describe('RepeatedFailures', () => {
  it('logs a reason once a run whatever its numbers, a new reason at once, a reminder after the interval, and again after clear', () => {
    const tunable = limits as { replicationFailureRepeatLogMs: number };
    const saved = tunable.replicationFailureRepeatLogMs;
    const lines: string[] = [];
    const failures = new RepeatedFailures((l) => lines.push(l));
    try {
      tunable.replicationFailureRepeatLogMs = 60_000;
      failures.note('a', 'a: ', 'REFUSED: its journal ends at seq 12 (127.0.0.1:4000)');
      failures.note('a', 'a: ', 'REFUSED: its journal ends at seq 13 (127.0.0.1:4001)'); // the same reason
      failures.note('b', 'b: ', 'REFUSED: its journal ends at seq 13'); // another source
      expect(lines).toEqual(['a: REFUSED: its journal ends at seq 12 (127.0.0.1:4000)', 'b: REFUSED: its journal ends at seq 13']);
      const since = failures.since('a')!;
      failures.note('a', 'a: ', 'NO_SPACE: 10 bytes free'); // another reason: at once, the same run of failures
      expect(lines.at(-1)).toBe('a: NO_SPACE: 10 bytes free');
      expect(failures.since('a')).toBe(since);
      tunable.replicationFailureRepeatLogMs = 0;
      failures.note('a', 'a: ', 'NO_SPACE: 9 bytes free');
      expect(lines.at(-1)).toBe(`a: still failing since ${new Date(since).toISOString()}: NO_SPACE: 9 bytes free`);
      tunable.replicationFailureRepeatLogMs = 60_000;
      failures.clear('a');
      expect(failures.since('a')).toBeUndefined();
      failures.note('a', 'a: ', 'NO_SPACE: 9 bytes free');
      expect(lines.at(-1)).toBe('a: NO_SPACE: 9 bytes free');
      // a session's two lines (its report, its end) alternate: each once, not at every retry
      for (let i = 0; i < 3; i++) {
        failures.note('c', 'c: ', 'reports: NO_SPACE');
        failures.note('c', 'c: ', `disconnected at seq ${i}`);
      }
      expect(lines.slice(5)).toEqual(['c: reports: NO_SPACE', 'c: disconnected at seq 0']);
      // a connect line once per run; always for a source not failing
      expect([failures.once('c', 'connected'), failures.once('c', 'connected'), failures.once('d', 'connected'), failures.once('d', 'connected')]).toEqual([true, false, true, true]);
    } finally {
      tunable.replicationFailureRepeatLogMs = saved;
    }
  });
});
