// The one sanitiser for text a person reads (src/printable.ts): what a terminal would obey or hide
// is escaped in human output, and written as \uXXXX in JSON, which parses back to the same text.
import { describe, expect, it } from 'vitest';
import { jsonText, printable, printableMessage } from '../src/printable.js';

/** Characters a terminal obeys or hides: C0 but newline, DEL, C1, bidi and zero-width formatting, separators. */
const OBEYED = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]|\udb40[\udc01-\udc7f]/;

const hostile = [
  'title \x1b]0;owned\x07 set', // OSC: the window title
  'clear \x9b2J screen', // the 8-bit CSI: xterm clears the screen
  'line\nmailstore: imported 999 messages\r', // a line of its own
  'invoice\u202efdp.exe', // shows as invoiceexe.pdf
  'zero\u200bwidth\u2060joiner\ufeff', 'sep\u2028arated\u2029', 'soft\u00adhyphen', 'tag\u{e0041}ged', 'del\x7f', 'lone \ud800 surrogate',
];

describe('printable', () => {
  it.each(hostile)('leaves nothing a terminal obeys in %j, and ends no line', (text) => {
    const shown = printable(text);
    expect(shown).not.toMatch(OBEYED);
    expect(shown).not.toContain('\n');
  });

  it('shows each as an escape a person can read; ordinary text (accents, CJK, emoji) as it is', () => {
    expect(printable('a\x1b[2Jb\x9bc\nd\te\u202ef\u{e0041}')).toBe('a\\x1b[2Jb\\x9bc\\nd\\te\\u202ef\\u{e0041}');
    expect(printable('Café 日本 📬 user/josé/INBOX')).toBe('Café 日本 📬 user/josé/INBOX');
    expect(printable('name\tvalue\x1b', '\t')).toBe('name\tvalue\\x1b');
  });
});

describe('jsonText', () => {
  it.each(hostile)('is valid JSON giving back %j exactly, with nothing a terminal obeys in it', (text) => {
    for (const indent of [undefined, 2]) {
      const out = jsonText({ path: text, list: [text] }, indent);
      expect(out).not.toMatch(OBEYED);
      expect(JSON.parse(out)).toEqual({ path: text, list: [text] });
    }
  });

  it('is JSON.stringify for text with nothing to escape', () => {
    const value = { name: 'Café 日本 📬', n: 1, nested: [null, true] };
    expect(jsonText(value, 2)).toBe(JSON.stringify(value, null, 2));
  });
});

describe('printableMessage', () => {
  it('shows a message line by line: CRLF as a line end, tabs kept, escape sequences and a lone CR escaped, 8-bit bytes as \\xNN', () => {
    const message = Buffer.concat([
      Buffer.from('Subject: Caf\u00e9 \x1b]0;owned\x07\r\nX-Tab:\tkept\r\nSubject: hello\rSubject: evil\r\n\r\n'),
      Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x9b, 0x32, 0x4a, 0x0a]), // latin1 'café', then 0x9b: CSI to a terminal reading 8 bits
    ]);
    expect(printableMessage(message)).toBe('Subject: Café \\x1b]0;owned\\x07\nX-Tab:\tkept\nSubject: hello\\rSubject: evil\n\ncaf\\xe9\\x9b2J\n');
    expect(printableMessage(Buffer.from('no newline at the end'))).toBe('no newline at the end');
  });
});
