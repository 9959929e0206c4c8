// A one-line progress meter for long work (import, export): count, bytes, rate and ETA on stderr,
// redrawn in place. Only on a TTY: logs and pipes stay clean.
import { limits } from '../limits.js';
import { monotonicMs } from '../monotonic.js';
import { isTerminal } from '../fs/terminal.js';

export interface ProgressTotals {
  messages?: number;
  bytes?: number;
}

export interface Progress {
  /** Adds finished work. */
  advance(messages: number, bytes: number): void;
  /** Sets the fraction done directly, when the source knows it better (mbox offset / file size). */
  position(done: number, total: number): void;
  /** Erases the meter (before the summary is printed). */
  finish(): void;
}

const silent: Progress = { advance() {}, position() {}, finish() {} };

/** A meter on `stream`, by default stderr (made only when it is a terminal: fs/terminal.ts). */
export function createProgress(label: string, totals: ProgressTotals = {}, stream?: NodeJS.WriteStream): Progress {
  if (stream === undefined) {
    if (!isTerminal(2)) return silent;
    stream = process.stderr;
  }
  if (!stream.isTTY) return silent;
  const out = stream;
  // monotonic: on the wall clock a step back of an hour froze the meter for that hour
  const started = monotonicMs();
  let messages = 0;
  let bytes = 0;
  let fraction: number | undefined;
  let lastDrawMs = -Infinity;
  let drawn = false;

  const draw = (force: boolean) => {
    const now = monotonicMs();
    if (!force && now - lastDrawMs < limits.progressRedrawMs) return;
    lastDrawMs = now;
    const seconds = Math.max((now - started) / 1000, 0.001);
    const done = fraction ?? (totals.bytes ? bytes / totals.bytes : totals.messages ? messages / totals.messages : undefined);
    const eta = done !== undefined && done > 0 && done < 1 ? ` ETA ${formatDuration(seconds * (1 - done) / done)}` : '';
    const percent = done !== undefined ? ` ${Math.min(100, Math.floor(done * 100))}%` : '';
    const count = totals.messages ? `${messages}/${totals.messages}` : `${messages}`;
    const line = `${label}: ${count} messages, ${formatBytes(bytes)}, ${Math.round(messages / seconds)} msg/s ${formatBytes(bytes / seconds)}/s${percent}${eta}`;
    out.write(`\r\x1b[K${line.slice(0, (out.columns || 100) - 1)}`);
    drawn = true;
  };

  return {
    advance(addMessages, addBytes) {
      messages += addMessages;
      bytes += addBytes;
      draw(false);
    },
    position(done, total) {
      fraction = total > 0 ? done / total : undefined;
      draw(false);
    },
    finish() {
      if (drawn) out.write('\r\x1b[K');
    },
  };
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  const shown = (value: number, unit: number) => (unit === 0 ? Math.round(value) : Number(value.toFixed(1)));
  let value = bytes;
  let unit = 0;
  // compare what will be printed, so 1023.96 KiB moves on to 1.0 MiB instead of showing 1024.0 KiB
  while (shown(value, unit) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  // round up once, before splitting into units: rounding the remainder printed 119.5 s as 1m60s
  const whole = Math.ceil(seconds);
  if (whole < 60) return `${whole}s`;
  if (whole < 3600) return `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, '0')}s`;
  return `${Math.floor(whole / 3600)}h${String(Math.floor((whole % 3600) / 60)).padStart(2, '0')}m`;
}
