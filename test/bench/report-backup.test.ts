// The backup section of the bench report: goal rows are medians of the rounds with their spread
// and verdicts on the median; the floor line says whether compression alone rules out 2x restic.
import { describe, expect, it } from 'vitest';
import { backupFloorText, backupGoals, backupSection, incrementalFloorText } from '../../src/bench/report-backup.js';
import type { Goal, TaggedResult } from '../../src/bench/report.js';

function round(n: number, ours: number, restic: number, incremental: number, read: number, floor: number): TaggedResult[] {
  const r = (peer: string, measurement: string, extra: Record<string, unknown>): TaggedResult => ({ corpus: 'main', peer, measurement, round: n, ...extra });
  return [
    r('restic', 'backup-full', { messages: 100, bytes: 1e6, seconds: restic }),
    r('restic', 'repository', { repo_bytes: 800_000 }),
    r('floor-compress', 'backup-full', { messages: 100, bytes: 1e6, seconds: floor }),
    r('mailstore', 'backup-full', { messages: 100, bytes: 1e6, seconds: ours }),
    r('mailstore', 'backup-incremental', { messages: 100, seconds: incremental }),
    r('mailstore', 'backup-unchanged', { messages: 100, seconds: incremental / 2 }),
    r('mailstore', 'restore-mailbox', { messages: 5, bytes_read: read, mailbox_bytes: 50_000 }),
    r('mailstore', 'repository', { repo_bytes: 700_000 }),
  ];
}

describe('backup report', () => {
  it('goals: medians over rounds, verdicts on the median', () => {
    const all = [...round(1, 1, 2.4, 0.2, 40_000, 0.5), ...round(2, 1, 1.8, 0.05, 40_000, 0.5), ...round(3, 1, 2.2, 0.09, 40_000, 0.5)];
    const [full, incremental, mailbox, size] = backupGoals(all);
    expect(full).toMatchObject({ pass: true });
    expect(full!.measured).toMatch(/^2\.20× \(1\.00 s vs restic 2\.20 s, median of 3 rounds, spread 1\.80–2\.40×\)/);
    expect(incremental!.pass).toBe(true); // 5, 20, 11.1: median 11.1
    expect(incremental!.measured).toMatch(/^11\.11×/);
    expect(mailbox).toMatchObject({ pass: true });
    expect(mailbox!.measured).toMatch(/^0\.80× \(read 40,000 of 50,000 bytes/);
    expect(size).toMatchObject({ pass: true });
    expect(size!.measured).toMatch(/^0\.88×/);
  });

  it('a goal with no rounds is not measured; a reading above the mailbox bytes misses', () => {
    const all = round(1, 3, 2, 1, 60_000, 1.5).filter((r) => r.peer !== 'restic');
    const [full, , mailbox, size] = backupGoals(all);
    expect(full).toEqual({ text: expect.any(String), measured: '', pass: undefined });
    expect(size!.pass).toBeUndefined();
    expect(mailbox!.pass).toBe(false);
  });

  it('the floor line: compression alone above half of restic rules 2x out; the section lists every row and adds four goals', () => {
    expect(backupFloorText(round(1, 3, 2, 1, 1, 1.5))).toMatch(/0\.75× .*out of reach/);
    expect(backupFloorText(round(1, 3, 2, 1, 1, 0.5))).toMatch(/within reach/);
    expect(incrementalFloorText(round(1, 3, 2, 1, 1, 0.5))).toMatch(/6\.00× .*cannot be 10× faster/);
    expect(incrementalFloorText(round(1, 3, 2, 0.2, 1, 0.5))).toMatch(/30\.00× .*within reach/);
    const out: string[] = [];
    const goals: Goal[] = [];
    backupSection(out, goals, round(1, 3, 2, 1, 1, 1.5));
    expect(goals).toHaveLength(4);
    const text = out.join('\n');
    expect(text).toMatch(/\| floor-compress \| backup-full \|/);
    expect(text).toMatch(/Goal: backup: full backup ≥ 2× restic .*\*\*MISS\*\*/);
  });
});
