// `mailstore fetch MAILBOX UID`: the exact stored bytes on stdout. The blob is verified against its
// hash before the first byte is written, so a corrupt message prints nothing and exits 6.
import type { Command } from 'commander';
import { parseUid, printJson, wantsJson, withReadStore, writeStdout } from '../context.js';

export function register(program: Command): void {
  program
    .command('fetch <mailbox> <uid>')
    .description('write the exact bytes of a message to stdout (verified first: corruption prints nothing, exit 6)')
    .option('--info', 'print the message metadata (flags, internal date, size, hash, modseq) instead of its bytes')
    .option('--json', 'with --info: print the metadata as JSON')
    .action(async (mailbox: string, uidText: string, options: { info?: boolean }, command: Command) => {
      const uid = parseUid(uidText);
      if (options.info) {
        const info = await withReadStore(command, (store) => store.messageInfo(mailbox, uid));
        if (wantsJson(command)) return printJson({ mailbox, ...info });
        return writeStdout(Buffer.from(
          `uid ${info.uid}\nsize ${info.size}\ninternal-date ${info.internalDate.toISOString()}\n` +
          `flags ${info.flags.join(' ')}\nmodseq ${info.modseq}\nhash ${info.hash}\n`,
        ));
      }
      const bytes = await withReadStore(command, (store) => store.fetch(mailbox, uid));
      await writeStdout(bytes);
    });
}
