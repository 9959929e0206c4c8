import { describe, expect, it, vi } from 'vitest';
import { PassThrough } from 'node:stream';
import { createProgress, formatBytes, formatDuration } from '../../src/cli/progress.js';

describe('formatDuration', () => {
  it('rounds up to whole seconds before splitting, so a unit never shows 60', () => {
    expect(formatDuration(119.5)).toBe('2m00s');
    expect(formatDuration(59.5)).toBe('1m00s');
    expect(formatDuration(3599.5)).toBe('1h00m');
    expect(formatDuration(7199)).toBe('1h59m');
  });

  it('prints seconds, minutes and seconds, or hours and minutes', () => {
    expect(formatDuration(0.2)).toBe('1s');
    expect(formatDuration(42)).toBe('42s');
    expect(formatDuration(61)).toBe('1m01s');
    expect(formatDuration(3 * 3600 + 5 * 60 + 30)).toBe('3h05m');
    expect(formatDuration(Infinity)).toBe('?');
    expect(formatDuration(NaN)).toBe('?');
  });
});

describe('formatBytes', () => {
  it('never prints 1024 of a unit: it moves to the next', () => {
    expect(formatBytes(1024 * 1024 - 1)).toBe('1.0 MiB');
    expect(formatBytes(1023.7)).toBe('1.0 KiB');
  });

  it('prints whole bytes, then one decimal', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(5 * 1024 ** 3)).toBe('5.0 GiB');
  });
});

describe('createProgress', () => {
  it('stays silent when stderr is not a terminal', () => {
    const stream = new PassThrough() as unknown as NodeJS.WriteStream;
    const written: string[] = [];
    (stream as unknown as PassThrough).on('data', (d) => written.push(String(d)));
    const progress = createProgress('import', { messages: 10 }, stream);
    progress.advance(5, 500);
    progress.finish();
    expect(written).toEqual([]);
  });

  it('draws count, percent and ETA in place on a terminal, and erases the line at the end', () => {
    const chunks: string[] = [];
    const stream = { isTTY: true, columns: 200, write: (s: string) => { chunks.push(s); return true; } } as unknown as NodeJS.WriteStream;
    const progress = createProgress('import', { messages: 10 }, stream);
    progress.advance(5, 2048);
    expect(chunks[0]).toMatch(/^\r\x1b\[Kimport: 5\/10 messages, 2\.0 KiB, \d+ msg\/s .* 50% ETA \d+s$/);
    progress.finish();
    expect(chunks.at(-1)).toBe('\r\x1b[K');
  });

  it('goes on redrawing, at sane rates, after the wall clock stepped back an hour', async () => {
    const chunks: string[] = [];
    const stream = { isTTY: true, columns: 200, write: (s: string) => { chunks.push(s); return true; } } as unknown as NodeJS.WriteStream;
    const clock = vi.spyOn(Date, 'now');
    try {
      const progress = createProgress('import', { messages: 10 }, stream);
      progress.advance(1, 1024);
      clock.mockImplementation(() => new Date().getTime() - 3600_000);
      await new Promise((resolve) => setTimeout(resolve, 250)); // past the redraw interval
      progress.advance(1, 1024);
      expect(chunks).toHaveLength(2);
      expect(Number(/(\d+) msg\/s/.exec(chunks[1]!)![1])).toBeLessThan(1000); // 2 messages in a quarter second, not in a clamped millisecond
    } finally {
      clock.mockRestore();
    }
  });
});
