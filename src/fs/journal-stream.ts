// Under systemd a unit's stderr is the journal (StandardError=journal, the default), which files
// every line at priority info unless the line starts with its syslog priority, <3> err, <4> warning
// or <6> info (SyslogLevelPrefix=, on by default; journald strips it). Without it a stopped store
// or a refused start was invisible to `journalctl -u mailstore -p err`. systemd names the stream
// in JOURNAL_STREAM (device:inode); a stderr redirected elsewhere keeps the variable, not the inode.
import { fstatSync } from 'node:fs';

const PRIORITY = { error: '<3>', warn: '<4>', info: '<6>' } as const;

let journal: boolean | undefined;

/** The prefix that gives a stderr line its priority in the journal; '' when stderr is not the journal. */
export function journalPrefix(level: keyof typeof PRIORITY): string {
  journal ??= stderrIsJournal();
  return journal ? PRIORITY[level] : '';
}

function stderrIsJournal(): boolean {
  const stream = /^([0-9]+):([0-9]+)$/.exec(process.env.JOURNAL_STREAM ?? '');
  if (!stream) return false;
  try {
    const stat = fstatSync(2, { bigint: true });
    return stat.dev === BigInt(stream[1]) && stat.ino === BigInt(stream[2]);
  } catch {
    return false; // no stderr at all
  }
}
