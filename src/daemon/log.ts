// The daemon's structured log: one JSON object per line (time, level, event, fields) on stderr or
// in --log FILE, which SIGHUP reopens (logrotate's postrotate sends it). An info line that follows
// another by less than daemonLimits.logFlushMs waits for the end of that interval and goes out
// with the others of it (or once logBufferBytesMax are waiting): one line per LMTP delivery written
// one at a time cost each delivery a write on its way to the 250. A line after a quiet spell, a
// warning or an error, reopen, close and the process's exit write at once, so nothing logged
// before a clean stop or a thrown error is lost (a SIGKILL loses at most logFlushMs of info lines).
import { journalPrefix } from '../fs/journal-stream.js';
import { LogFile } from '../fs/socket-file.js';
import { daemonLimits } from '../limits.js';
import { jsonText } from '../printable.js';
import { monotonicMs } from '../monotonic.js';

/** Loggers not closed yet: the process's exit writes what they gathered (one listener for all of them). */
const unclosed = new Set<Logger>();
process.on('exit', () => { for (const logger of unclosed) logger.flush(true); });

export type LogLevel = 'info' | 'warn' | 'error';

export interface LoggerOptions {
  /** Bounds of the gathering (tests); default daemonLimits.logFlushMs and logBufferBytesMax. */
  flushMs?: number;
  bufferBytesMax?: number;
}

export class Logger {
  private readonly file?: LogFile;
  private pending: string[] = [];
  private pendingBytes = 0;
  private timer?: NodeJS.Timeout;
  /** monotonicMs() of the last write (-Infinity: none yet, the first line goes out at once). */
  private writtenAt = Number.NEGATIVE_INFINITY;
  private readonly flushMs: number;
  private readonly bufferBytesMax: number;

  constructor(path?: string, options: LoggerOptions = {}) {
    if (path !== undefined) this.file = new LogFile(path);
    this.flushMs = options.flushMs ?? daemonLimits.logFlushMs;
    this.bufferBytesMax = options.bufferBytesMax ?? daemonLimits.logBufferBytesMax;
    unclosed.add(this);
  }

  log(level: LogLevel, event: string, fields: Record<string, unknown> = {}): void {
    // jsonText: a recipient's bidi override or a DEL (which journalctl shows as '[N blob data]') written \uXXXX
    const line = (this.file ? '' : journalPrefix(level)) + jsonText({ time: new Date().toISOString(), level, event, ...fields }) + '\n';
    this.pending.push(line);
    this.pendingBytes += line.length;
    const sinceMs = monotonicMs() - this.writtenAt;
    if (level !== 'info' || this.pendingBytes >= this.bufferBytesMax || (!this.timer && sinceMs >= this.flushMs)) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.flushMs - sinceMs).unref(); // a quiet daemon exits without waiting for it
  }

  info(event: string, fields?: Record<string, unknown>): void {
    this.log('info', event, fields);
  }

  warn(event: string, fields?: Record<string, unknown>): void {
    this.log('warn', event, fields);
  }

  error(event: string, fields?: Record<string, unknown>): void {
    this.log('error', event, fields);
  }

  /** Writes the gathered lines now (`sync`: before the process exits, when no callback runs again). */
  flush(sync = false): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    // at the exit, the file's stream may still hold lines written before (not yet open, or behind
    // a write in flight): writeNow takes them too, with nothing gathered as well
    if (this.pending.length === 0 && !(sync && this.file)) return;
    const text = this.pending.join('');
    this.pending = [];
    this.pendingBytes = 0;
    this.writtenAt = monotonicMs();
    if (!this.file) process.stderr.write(text);
    else if (sync) this.file.writeNow(text);
    else this.file.write(text);
  }

  reopen(): void {
    this.flush(); // the lines before the rotation go to the old file
    this.file?.reopen();
  }

  async close(): Promise<void> {
    this.flush();
    unclosed.delete(this);
    await this.file?.close();
  }
}
