// A listing written to stdout as it is read (`messages`, `search`), never held whole: kept out of
// context.ts, which every command (append too) loads.
import { limits } from '../limits.js';
import { jsonText, printable } from '../printable.js';
import { writeStdout } from './context.js';

/**
 * A listing written to stdout as it is read, in pieces of about limits.stdoutPieceBytes: held whole
 * first, `messages` of a 1M-message mailbox took the CLI to 670 MB (the bound is 256 MB).
 */
export class StdoutPieces {
  private parts: string[] = [];
  private chars = 0;

  constructor(private readonly write: (bytes: Buffer) => Promise<void> = writeStdout) {}

  /** One line of human output, shown as printLine shows it. */
  line(text: string): Promise<void> {
    return this.text(printable(text, '\t') + '\n');
  }

  text(text: string): Promise<void> {
    this.parts.push(text);
    this.chars += text.length;
    return this.chars >= limits.stdoutPieceBytes ? this.flush() : Promise.resolve();
  }

  flush(): Promise<void> {
    const piece = this.parts.join('');
    this.parts = [];
    this.chars = 0;
    return this.write(Buffer.from(piece));
  }
}

/** printJson of an array whose items come one by one: the same bytes, written as they come. */
export async function printJsonItems(items: AsyncIterable<unknown>, out = new StdoutPieces()): Promise<void> {
  let first = true;
  for await (const item of items) {
    await out.text(`${first ? '[\n' : ',\n'}  ${jsonText(item, 2).replaceAll('\n', '\n  ')}`);
    first = false;
  }
  await out.text(first ? '[]\n' : '\n]\n');
  await out.flush();
}
