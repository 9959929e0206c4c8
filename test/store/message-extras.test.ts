// Issue 18 #10: the optional per-message metadata (envelope sender, internal date zone, recent)
// is validated, kept in the index, carried by copy and move, and survives a rebuild from the
// journal and a journal rewritten from the index (a checkpoint). Absent means unknown.
import { describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { MailstoreError } from '../../src/errors.js';
import { limits } from '../../src/limits.js';
import { tmpDir } from '../helpers/tmp.js';

const msg = (i: number) => Buffer.from(`Subject: m${i}\r\n\r\nbody ${i}\r\n`);

async function infos(store: Store, mailbox: string) {
  const out = [];
  for await (const info of store.messages(mailbox)) out.push(info);
  return out;
}

async function expectInvalid(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(MailstoreError);
  expect((error as MailstoreError).code).toBe('INVALID');
  expect((error as MailstoreError).message).toMatch(pattern);
}

describe('per-message metadata', () => {
  it('is stored when given, absent when not, and returned in MessageInfo', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    try {
      await store.createMailbox('INBOX');
      await store.append('INBOX', msg(1), { envelopeFrom: 'alice@example.org', dateZoneMinutes: -300, recent: true });
      await store.append('INBOX', msg(2));
      await store.append('INBOX', msg(3), { recent: false, dateZoneMinutes: 0 });
      const [a, b, c] = await infos(store, 'INBOX');
      expect(a).toMatchObject({ envelopeFrom: 'alice@example.org', dateZoneMinutes: -300, recent: true });
      expect(Object.keys(b!)).not.toContain('envelopeFrom');
      expect(Object.keys(b!)).not.toContain('dateZoneMinutes');
      expect(Object.keys(b!)).not.toContain('recent');
      expect(c!.dateZoneMinutes).toBe(0);
      expect(Object.keys(c!)).not.toContain('recent');
      expect(await store.messageInfo('INBOX', 1)).toMatchObject({ envelopeFrom: 'alice@example.org', dateZoneMinutes: -300, recent: true });
    } finally {
      await store.close();
    }
  });

  it('each option is validated: INVALID, nothing stored', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    try {
      await store.createMailbox('INBOX');
      const bad: [Record<string, unknown>, RegExp][] = [
        [{ envelopeFrom: '' }, /envelopeFrom/],
        [{ envelopeFrom: 'a b@x' }, /envelopeFrom/],
        [{ envelopeFrom: 'a\n@x' }, /envelopeFrom/],
        [{ envelopeFrom: 'é@x' }, /envelopeFrom/],
        [{ envelopeFrom: 'a'.repeat(limits.envelopeFromBytesMax + 1) }, /envelopeFrom/],
        [{ envelopeFrom: 42 }, /envelopeFrom/],
        [{ dateZoneMinutes: 1.5 }, /dateZoneMinutes/],
        [{ dateZoneMinutes: limits.dateZoneMinutesMax + 1 }, /dateZoneMinutes/],
        [{ dateZoneMinutes: limits.dateZoneMinutesMin - 1 }, /dateZoneMinutes/],
        [{ dateZoneMinutes: '+0100' }, /dateZoneMinutes/],
        [{ dateZoneMinutes: Number.NaN }, /dateZoneMinutes/],
        [{ recent: 'yes' }, /recent/],
        [{ recent: 1 }, /recent/],
      ];
      for (const [options, pattern] of bad) {
        await expectInvalid(store.append('INBOX', msg(1), options as never), pattern);
        await expectInvalid(store.appendBatch('INBOX', [{ bytes: msg(1), ...options } as never]), pattern);
      }
      expect((await store.status('INBOX')).messages).toBe(0);
      // the bounds themselves are accepted
      await store.append('INBOX', msg(1), { envelopeFrom: 'a'.repeat(limits.envelopeFromBytesMax), dateZoneMinutes: limits.dateZoneMinutesMax });
      await store.append('INBOX', msg(2), { envelopeFrom: '<>', dateZoneMinutes: limits.dateZoneMinutesMin });
      expect((await store.status('INBOX')).messages).toBe(2);
    } finally {
      await store.close();
    }
  });

  it('copy and move carry it; flag changes keep it; a rebuild and a checkpoint replay reproduce it', async () => {
    const dir = tmpDir();
    let store = await Store.open(dir, { create: true });
    const expected = [
      { envelopeFrom: 'bob@example.net', dateZoneMinutes: 60, recent: true },
      { envelopeFrom: 'MAILER-DAEMON' },
      {},
      { dateZoneMinutes: 570 },
    ];
    try {
      await store.createMailbox('INBOX');
      await store.createMailbox('Archive');
      await store.appendBatch('INBOX', expected.map((extras, i) => ({ bytes: msg(i), ...extras })));
      await store.setFlags('INBOX', [1, 2, 3, 4], { add: ['\\Seen'] });
      await store.copy('INBOX', [1, 2], 'Archive');
      await store.move('INBOX', [4], 'Archive');
    } finally {
      await store.close();
    }
    const pick = (list: Awaited<ReturnType<typeof infos>>) => list.map(({ uid, envelopeFrom, dateZoneMinutes, recent }) => ({ uid, envelopeFrom, dateZoneMinutes, recent }));
    const read = async () => {
      const s = await Store.open(dir);
      try {
        return { inbox: pick(await infos(s, 'INBOX')), archive: pick(await infos(s, 'Archive')), health: s.health.degraded };
      } finally {
        await s.close();
      }
    };
    const before = await read();
    expect(before.inbox).toEqual([{ uid: 1, ...expected[0], recent: true }, { uid: 2, ...expected[1] }, { uid: 3 }].map((x) => ({ envelopeFrom: undefined, dateZoneMinutes: undefined, recent: undefined, ...x })));
    expect(before.archive.map(({ uid: _uid, ...rest }) => rest)).toEqual([expected[0], expected[1], expected[3]].map((x) => ({ envelopeFrom: undefined, dateZoneMinutes: undefined, recent: undefined, ...x })));
    rmSync(join(dir, 'index'), { recursive: true });
    expect(await read()).toEqual(before);
    // a journal written from the index (a checkpoint), then the index lost: the checkpoint alone rebuilds it
    store = await Store.open(dir);
    try {
      expect((await store.maintenance().rewriteJournalFromIndex()).differences).toBe(0);
    } finally {
      await store.close();
    }
    rmSync(join(dir, 'index'), { recursive: true });
    expect(await read()).toEqual(before);
  });
});
