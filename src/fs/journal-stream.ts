// Under systemd a unit's stderr is the journal (StandardError=journal, the default), which files
// every line at priority info unless the line starts with its syslog priority, <3> err, <4> warning
// or <6> info (SyslogLevelPrefix=, on by default; journald strips it). Without it a stopped store
// or a refused start was invisible to `journalctl -u mailstore -p err`. systemd names the stream
// in JOURNAL_STREAM (device:inode); a stderr redirected elsewhere keeps the variable, not the inode.
import { fstatSync } from 'node:fs';

const PRIORITY = { error: '<3>', warn: '<4>', info: '<6>' } as const;

/** Whether stdout (1), stderr (2) is the journal, once known. */
const journal = new Map<number, boolean>();

/**
 * The prefix that gives a line on stderr (or stdout, `fd` 1: a unit's two are one journal stream
 * by default) its priority in the journal; '' when that is not the journal.
 */
export function journalPrefix(level: keyof typeof PRIORITY, fd: 1 | 2 = 2): string {
  if (!journal.has(fd)) journal.set(fd, isJournal(fd));
  return journal.get(fd) ? PRIORITY[level] : '';
}

function isJournal(fd: number): boolean {
  const stream = /^([0-9]+):([0-9]+)$/.exec(process.env.JOURNAL_STREAM ?? '');
  if (!stream) return false;
  try {
    const stat = fstatSync(fd, { bigint: true });
    return stat.dev === BigInt(stream[1]) && stat.ino === BigInt(stream[2]);
  } catch {
    return false; // closed
  }
}
