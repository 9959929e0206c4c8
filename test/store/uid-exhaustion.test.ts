// A mailbox that has given out its last UID (2^32 - 1: RFC 9051 UIDs are 32 bits, never reused
// within a UIDVALIDITY) takes no more messages: every path that gives out uids refuses with a
// code, stores nothing, and the store keeps serving every other mailbox. A long-lived spool gets
// there by XFER or restore of a mailbox whose uidNext came from elsewhere, not only by 4G appends.
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { keys } from '../../src/keys/index-keys.js';
import type { MailboxInfo } from '../../src/store/records.js';
import { scrub } from '../../src/scrub/scrub.js';
import { codeOf } from '../helpers/errors.js';
import { tmpDir } from '../helpers/tmp.js';

const UID_MAX = 0xffffffff;
const msg = (i: number) => Buffer.from(`From: a@example.org\r\nSubject: ${i}\r\n\r\nbody ${i}\r\n`);

/** Sets the mailbox's uidNext as XFER's reconcile does (a journaled state.mailbox op). */
async function raiseUidNext(store: Store, name: string, uidNext: number): Promise<void> {
  const id = Buffer.from((await store.mailbox(name)).id.replace(/-/g, ''), 'hex');
  await store.replication().commitOps(async ({ view }) => {
    const box = (await view.get<MailboxInfo>(keys.info(id)))!;
    return { ops: [{ op: 'state.mailbox', info: { ...box, uidNext } }], result: undefined };
  });
}

describe('uid exhaustion', () => {
  it('gives out uid 2^32 - 1, then refuses append, appendBatch, copy, move and adoption with OVER_QUOTA; nothing lost, the store keeps serving', async () => {
    const dir = tmpDir();
    let store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    await store.createMailbox('Other');
    await store.append('Other', msg(0));
    await raiseUidNext(store, 'INBOX', UID_MAX - 1);
    expect((await store.appendBatch('INBOX', [{ bytes: msg(1) }])).map((r) => r.uid)).toEqual([UID_MAX - 1]);
    // two more do not fit: neither is stored (never one of them, never a wrap to 0 or 1)
    expect(await codeOf(store.appendBatch('INBOX', [{ bytes: msg(2) }, { bytes: msg(3) }]))).toBe('OVER_QUOTA');
    expect((await store.append('INBOX', msg(2))).uid).toBe(UID_MAX);
    const before = await store.status('INBOX');
    expect(before).toMatchObject({ messages: 2, uidNext: UID_MAX + 1 });
    const refused = await store.append('INBOX', msg(3)).then(() => undefined, (error: Error) => error);
    expect(refused).toMatchObject({ code: 'OVER_QUOTA' });
    expect(refused!.message).toMatch(/INBOX.*last UID/);
    expect(await codeOf(store.copy('Other', 1, 'INBOX'))).toBe('OVER_QUOTA');
    expect(await codeOf(store.move('Other', 1, 'INBOX'))).toBe('OVER_QUOTA');
    expect(await codeOf(store.copy('INBOX', UID_MAX, 'INBOX'))).toBe('OVER_QUOTA');
    expect(await codeOf(store.maintenance().adoptBlobs('INBOX', [{ hash: Buffer.alloc(32), size: 1, date: 0, pack: 0, offset: 0 }]))).toBe('OVER_QUOTA');
    expect(await store.status('INBOX')).toEqual(before);
    // the store did not stop: the other mailbox, and the full one's messages, are as they were
    expect((await store.append('Other', msg(4))).uid).toBe(2);
    expect((await store.move('INBOX', [UID_MAX - 1, UID_MAX], 'Other')).mapping).toEqual([[UID_MAX - 1, 3], [UID_MAX, 4]]);
    expect((await store.fetch('Other', 4)).equals(msg(2))).toBe(true);
    await store.close();
    store = await Store.open(dir);
    expect(await store.status('INBOX')).toMatchObject({ messages: 0, uidNext: UID_MAX + 1 });
    expect(await store.status('Other')).toMatchObject({ messages: 4 });
    expect((await scrub(store)).findings).toEqual([]);
    await store.close();
  });
});
