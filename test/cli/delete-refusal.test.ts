// `mailbox delete` and `user delete` without --force refuse a mailbox (tree) that holds messages.
// The refusal looked at the count first and deleted after, in two steps: a delivery landing in
// between (acknowledged, its uid printed or 250 sent) was deleted with the mailbox. Here a
// delivery lands right after the command's first call to the store; whatever it is, an
// acknowledged message must survive, or the delivery must fail because the mailbox is gone.
import { describe, expect, it } from 'vitest';
import { deleteChecked } from '../../src/cli/commands/mailbox.js';
import { deleteUserChecked } from '../../src/cli/commands/user.js';
import { PROCEDURES } from '../../src/daemon/procedures.js';
import type { MailStore } from '../../src/store/api.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';

const mail = Buffer.from('Subject: arriving\r\n\r\nwhile the admin deletes\r\n');

/**
 * The store as a command sees it through a daemon (its calls and procedures, nothing of its
 * insides); right after its first call returns, `deliver` runs.
 */
function deliveringAfterFirstCall(store: Store, deliver: () => Promise<void>): MailStore {
  let delivered = false;
  const procedure = (name: string, args: unknown[]) => (PROCEDURES[name as keyof typeof PROCEDURES] as (s: Store, ...a: unknown[]) => unknown)(store, ...args);
  return new Proxy(store, {
    getPrototypeOf: () => Object.prototype, // not a Store: procedures() calls procedure() as on a Client
    get(target, property) {
      const value = property === 'procedure' ? procedure : Reflect.get(target, property, target) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const result = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (delivered || !(result instanceof Promise)) return result;
        delivered = true;
        return result.then(async (answer) => { await deliver(); return answer; });
      };
    },
  });
}

async function raceDelete(mailbox: string, command: (store: MailStore) => Promise<unknown>): Promise<{ deleted: boolean; acknowledged: boolean; kept: number }> {
  const store = await Store.open(tmpDir('delete-refusal'), { create: true });
  try {
    await store.createMailbox(mailbox, { owner: 'bob' });
    let acknowledged = false;
    const racing = deliveringAfterFirstCall(store, async () => {
      acknowledged = await store.append(mailbox, mail).then(() => true, () => false);
    });
    const deleted = await command(racing).then(() => true, (error: { code?: string }) => {
      expect(error.code).toBe('REFUSED');
      return false;
    });
    const kept = await store.status(mailbox).then((s) => s.messages, () => 0);
    return { deleted, acknowledged, kept };
  } finally {
    await store.close();
  }
}

describe('delete without --force while mail arrives', () => {
  for (const [what, mailbox, command] of [
    ['mailbox delete', 'user/bob/INBOX', (s: MailStore) => deleteChecked(s, 'user/bob/INBOX', {})],
    ['mailbox delete --recursive', 'user/bob/INBOX', (s: MailStore) => deleteChecked(s, 'user/bob', { recursive: true })],
    ['user delete', 'user/bob/INBOX', (s: MailStore) => deleteUserChecked(s, 'bob', {})],
  ] as const) {
    it(`${what}: an acknowledged delivery is never deleted with the mailbox`, async () => {
      const { deleted, acknowledged, kept } = await raceDelete(mailbox, command);
      if (acknowledged) {
        expect(deleted).toBe(false); // refused: it holds a message now
        expect(kept).toBe(1);
      } else {
        expect(deleted).toBe(true); // deleted while empty; the delivery then found no mailbox
      }
    });
  }
});
