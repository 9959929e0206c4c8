// Text from the world (a file or folder name in a mail source someone else wrote, a recipient an
// MTA passed on) reaches an admin's terminal and the journal in warnings, errors, listings and
// logs. A terminal obeys control characters rather than showing them: ESC and the 8-bit CSI
// (U+009B) move the cursor, clear the screen or set the window title; a newline makes up a line
// of its own; a bidi override shows the rest of the line reversed; zero-width characters hide.
// Human output shows each such character as an escape, JSON output as \uXXXX (it parses back to
// the very same string). The same set the store refuses in names (src/store/validate.ts).

// The \p{...} classes are built at their first use, which text of printable ASCII alone (nearly
// all) never makes: V8 builds such a class from ICU's tables when the literal is evaluated, ~2M
// instructions each, which every command paid at load (issue 16).
/** Controls (C0, DEL, C1), invisible formatting (Unicode Cf: bidi, zero-width), line and paragraph separators, lone surrogates. */
let unshowable: RegExp | undefined;
/** What JSON.stringify leaves raw of the above: it escapes C0 and lone surrogates itself. */
let unshowableInJson: RegExp | undefined;
/** Text with nothing in the classes above: printable ASCII (space to ~). */
const SHOWABLE_ASCII = /^[\x20-\x7e]*$/;
/** JSON.stringify's output with nothing in its class: ASCII (it leaves no C0 raw). */
const ASCII = /^[\x00-\x7e]*$/;

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * `text` as one line a terminal shows as it is: \n, \r and \t, other controls as \xNN, formatting
 * characters as \uXXXX (\u{XXXXX} past the BMP). `keep`: characters the caller means (a tab
 * between columns).
 */
export function printable(text: string, keep = ''): string {
  if (SHOWABLE_ASCII.test(text)) return text;
  unshowable ??= /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;
  return text.replace(unshowable, (c) => (keep.includes(c) ? c : NAMED[c] ?? escapeCodePoint(c.codePointAt(0)!)));
}

function escapeCodePoint(code: number): string {
  if (code < 0x100) return `\\x${code.toString(16).padStart(2, '0')}`;
  if (code <= 0xffff) return `\\u${code.toString(16).padStart(4, '0')}`;
  return `\\u{${code.toString(16)}}`;
}

/** JSON.stringify, with what a terminal would obey or hide written as \uXXXX: the same document to a parser. */
export function jsonText(value: unknown, indent?: number): string {
  // String(): JSON.stringify(undefined) is undefined, which printed as the word before
  const json = String(JSON.stringify(value, null, indent));
  if (ASCII.test(json)) return json;
  unshowableInJson ??= /[\u007f-\u009f\p{Cf}\p{Zl}\p{Zp}]/gu;
  return json.replace(unshowableInJson, jsonEscape);
}

/** Each UTF-16 unit as \uXXXX (a tag character past the BMP as its surrogate pair). */
function jsonEscape(c: string): string {
  let out = '';
  for (let i = 0; i < c.length; i++) out += `\\u${c.charCodeAt(i).toString(16).padStart(4, '0')}`;
  return out;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A message's bytes as a terminal shows them as they are (fetch to a terminal): each line printable,
 * tabs kept, the CR of a CRLF left out; a line that is no UTF-8 (an 8-bit charset) with its bytes
 * past ASCII as \xNN.
 */
export function printableMessage(bytes: Buffer): string {
  const lines: string[] = [];
  let start = 0;
  while (start < bytes.length) {
    const newline = bytes.indexOf(0x0a, start);
    const end = newline < 0 ? bytes.length : newline;
    lines.push(printableBytes(bytes.subarray(start, end > start && bytes[end - 1] === 0x0d ? end - 1 : end)));
    start = end + 1;
  }
  return lines.join('\n') + (bytes.at(-1) === 0x0a ? '\n' : '');
}

function printableBytes(line: Buffer): string {
  try {
    return printable(strictUtf8.decode(line), '\t');
  } catch {
    let out = '';
    for (const byte of line) out += byte < 0x80 ? printable(String.fromCharCode(byte), '\t') : escapeCodePoint(byte);
    return out;
  }
}
