// Issue 12's churn step: which UIDs are expunged (80 % at random, seeded, the same list for
// mailstore and Dovecot), the list's file format, and disk usage as du counts it. The step runs
// src/bench/measure/churn.ts (mailstore) and tools/bench/peers/churn-dovecot.sh (Dovecot mdbox +
// doveadm purge); report-churn.ts renders it.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/** `share` of the UIDs 1..messages, chosen by a seeded generator, ascending. */
export function churnUids(messages: number, share: number, seed: string): number[] {
  let state = 0x9e3779b9;
  for (const c of seed) state = Math.imul(state ^ c.charCodeAt(0), 0x01000193) >>> 0;
  const next = () => { // xorshift32: enough to pick UIDs, the same on every machine
    state ^= state << 13; state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5; state >>>= 0;
    return state / 4294967296;
  };
  const all = Array.from({ length: messages }, (_, i) => i + 1);
  const count = Math.round(messages * share);
  for (let i = 0; i < count; i++) { // partial Fisher-Yates: the first `count` are a uniform sample
    const j = i + Math.floor(next() * (messages - i));
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  return all.slice(0, count).sort((a, b) => a - b);
}

/** One UID a line (what churn-dovecot.sh turns into IMAP sequence sets). */
export function formatUidList(uids: number[]): string {
  return uids.map((u) => `${u}\n`).join('');
}

export function parseUidList(text: string): number[] {
  const uids = text.split('\n').filter((l) => l.trim() !== '').map(Number);
  for (const u of uids) if (!Number.isInteger(u) || u < 1) throw new Error(`not a UID: ${u}`);
  return uids;
}

/** Allocated bytes of a directory tree (du -sB1), as the peers' space rows count them. */
export async function diskBytes(path: string): Promise<number> {
  const { stdout } = await promisify(execFile)('du', ['-sB1', path]);
  return Number(stdout.split('\t')[0]);
}
