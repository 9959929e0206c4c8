// RFC 2047 encoded words (=?charset?B|Q?text?=) in header text, decoded: a search key names the
// text a reader sees ("Grüße"), which the header may carry as =?UTF-8?B?R3LDvMOfZQ==?=.

const ENCODED_WORD = /=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g;
/** Only charsets TextDecoder knows (a few hundred labels): a message's made-up ones are not kept. */
const decoders = new Map<string, TextDecoder>();

/** `text` with each encoded word in a charset this runtime knows decoded; any other left as it is. */
export function decodeEncodedWords(text: string): string {
  if (!text.includes('=?')) return text;
  let out = '';
  let at = 0;
  let run: { charset: string; decoder: TextDecoder; bytes: Buffer[] } | undefined;
  const endRun = () => {
    if (run) out += run.decoder.decode(Buffer.concat(run.bytes));
    run = undefined;
  };
  for (const word of text.matchAll(ENCODED_WORD)) {
    const charset = word[1].split('*')[0].toLowerCase(); // RFC 2231: charset*language
    const decoder = decoderFor(charset);
    if (!decoder) continue;
    const between = text.slice(at, word.index);
    // white space between two encoded words is no text (RFC 2047 6.2); a character split over
    // two words of one charset is whole only once their bytes are joined
    if (!run || !/^[ \t\r\n]*$/.test(between)) {
      endRun();
      out += between;
    } else if (run.charset !== charset) endRun();
    run ??= { charset, decoder, bytes: [] };
    run.bytes.push(word[2].toUpperCase() === 'B' ? Buffer.from(word[3], 'base64') : quotedBytes(word[3]));
    at = word.index + word[0].length;
  }
  endRun();
  return out + text.slice(at);
}

function decoderFor(charset: string): TextDecoder | undefined {
  let decoder = decoders.get(charset);
  if (decoder) return decoder;
  try { decoder = new TextDecoder(charset); } catch { return undefined; }
  decoders.set(charset, decoder);
  return decoder;
}

/** The "Q" encoding: "_" is a space, "=XX" a byte. */
function quotedBytes(text: string): Buffer {
  const source = Buffer.from(text.replace(/_/g, ' '), 'utf8');
  const bytes = Buffer.alloc(source.length);
  let length = 0;
  for (let i = 0; i < source.length; i++) {
    const hex = source[i] === 0x3d ? source.toString('latin1', i + 1, i + 3) : '';
    if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes[length++] = parseInt(hex, 16);
      i += 2;
    } else bytes[length++] = source[i];
  }
  return bytes.subarray(0, length);
}
