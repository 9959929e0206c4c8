// Maildir as other programs read it: Python's mailbox module (a reference implementation of the
// format's rules) reads the same directory, and the flags must agree. Dovecot's behaviour, where it
// matters, is named in each case (doveadm on a copy of the files, by hand: it will not run as root).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodeFileSystem as fs } from '../../src/fs/node-fs.js';
import { readMaildir } from '../../src/formats/maildir.js';

/** Python's mailbox.Maildir: each message's body and its flags as IMAP flags, keyed by body. */
function pythonFlags(dir: string): Record<string, string[]> {
  const script = `
import json, mailbox, sys
names = {'D': '\\\\Draft', 'F': '\\\\Flagged', 'P': '$Forwarded', 'R': '\\\\Answered', 'S': '\\\\Seen', 'T': '\\\\Deleted'}
box = mailbox.Maildir(sys.argv[1], factory=None, create=False)
out = {}
for key in box.keys():
    message = box.get_message(key)
    out[message.get_payload()] = sorted(names[f] for f in message.get_flags() if f in names)
print(json.dumps(out))
`;
  const result = spawnSync('python3', ['-c', script, dir], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`python3 failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as Record<string, string[]>;
}

async function ourFlags(dir: string): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for await (const message of readMaildir(fs, dir)) out[message.bytes.toString('utf8').split('\n\n')[1]!] = message.flags.filter((f) => f.startsWith('\\') || f === '$Forwarded');
  return out;
}

describe('Maildir flags as Python\'s mailbox reads them', () => {
  it('a message in new/ with info keeps its flags, \\Seen too (Dovecot leaves one there when a client flags it while \\Recent)', async () => {
    // Dovecot 2.3 wrote new/1796516514.M662000P24239Q2.mailstore:2,Sde for `doveadm flags add '\Seen ...'`
    // and shows it \Seen; the import dropped the \Seen
    const dir = mkdtempSync(join(tmpdir(), 'mailstore-maildir-readers-'));
    for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(dir, sub));
    const files: [string, string][] = [
      ['new/1796516514.M662000P24239Q2.host:2,S', 'seen in new'],
      ['new/1796516515.M1P1Q3.host:2,FR', 'flagged in new'],
      ['new/1796516516.M1P1Q4.host', 'plain new'],
      ['cur/1796516517.M1P1Q5.host:2,PST', 'cur'],
      ['cur/1796516518.M1P1Q6.host,S=44,W=46:2,DS', 'sizes'],
    ];
    for (const [name, body] of files) writeFileSync(join(dir, name), `Subject: x\n\n${body}`);
    const python = pythonFlags(dir);
    expect(python['seen in new']).toEqual(['\\Seen']);
    expect(await ourFlags(dir)).toEqual(python);
  });
});
