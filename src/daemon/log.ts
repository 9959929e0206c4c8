// The daemon's structured log: one JSON object per line (time, level, event, fields) on stderr or
// in --log FILE, which SIGHUP reopens (logrotate's postrotate sends it).
import { LogFile } from '../fs/socket-file.js';

export type LogLevel = 'info' | 'warn' | 'error';

export class Logger {
  private readonly file?: LogFile;

  constructor(path?: string) {
    if (path !== undefined) this.file = new LogFile(path);
  }

  log(level: LogLevel, event: string, fields: Record<string, unknown> = {}): void {
    const line = JSON.stringify({ time: new Date().toISOString(), level, event, ...fields }) + '\n';
    if (this.file) this.file.write(line);
    else process.stderr.write(line);
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

  reopen(): void {
    this.file?.reopen();
  }

  async close(): Promise<void> {
    await this.file?.close();
  }
}
