// `mailstore mailbox dump` and `mailbox undump` (ctl_mboxlist -d / -u): the mailbox list as text,
// one JSON object per line (src/store/mailbox-list.ts documents the format). Registered by mailbox.ts.
import type { Command } from 'commander';
import { MailstoreError } from '../../errors.js';
import { DUMP_HEADER, formatDumpLine, parseDumpLine, type DumpedMailbox } from '../../store/mailbox-list.js';
import { printJson, printLine, wantsJson, withReadStore, withStore, writeStdout } from '../context.js';

/** Most bytes of a mailbox list read from stdin (a million mailboxes at ~1 KB each). */
const DUMP_BYTES_MAX = 1024 * 1024 * 1024;

export function registerDump(mailbox: Command): void {
  mailbox
    .command('dump')
    .description('print the mailbox list (name, id, uidValidity, uidNext, highest modseq, owner, ACL, created) as text, one JSON object per line; changes nothing')
    .action(async (_options: unknown, command: Command) => {
      await withReadStore(command, async (store) => {
        // loaded here, not at the top: `mailbox` registers these commands, and every mailbox command
        // (status, list) loaded the daemon's procedures with it (scrub, replication, node:tls; issue 16)
        const { procedures } = await import('../../daemon/procedures.js');
        await writeStdout(Buffer.from(DUMP_HEADER + '\n'));
        for await (const entry of procedures(store).dumpMailboxes()) await writeStdout(Buffer.from(formatDumpLine(entry) + '\n'));
      });
    });

  mailbox
    .command('undump')
    .description('create the mailboxes of a dump read from stdin, with their ids, uidValidity and uidNext, modseqs above the listed ones (into an empty store: the same list; an entry without uidNext gets a new uidValidity). A name or id that exists is refused (EXISTS); mailboxes are created in records of 1000, each durable when the next starts')
    .option('--json', 'print {created}')
    .action(async (_options: unknown, command: Command) => {
      const entries = parseDump(await readAllStdin());
      const { procedures } = await import('../../daemon/procedures.js'); // on use, as in dump
      const result = await withStore(command, (store) => procedures(store).undumpMailboxes(entries));
      if (wantsJson(command)) return printJson(result);
      await printLine(`created ${result.created} mailbox${result.created === 1 ? '' : 'es'}`);
    });
}

function parseDump(text: string): DumpedMailbox[] {
  const out: DumpedMailbox[] = [];
  text.split('\n').forEach((line, i) => {
    const entry = parseDumpLine(line, i + 1);
    if (entry) out.push(entry);
  });
  return out;
}

async function readAllStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of process.stdin) {
    const piece = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    total += piece.length;
    if (total > DUMP_BYTES_MAX) throw new MailstoreError('TOO_LARGE', `mailbox list on stdin exceeds ${DUMP_BYTES_MAX} bytes`);
    chunks.push(piece);
  }
  return Buffer.concat(chunks, total).toString('utf8');
}
