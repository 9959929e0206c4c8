// What an open tells the admin (openNotices: the CLI's stderr lines, the daemon's `store-opened`
// warnings): nothing for an ordinary open or a new store; a sentence for a rebuild, a conversion,
// a cut tail and a degraded open; a real store whose index was removed says it was rebuilt.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { newHealth, openNotices } from '../../src/store/recovery.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';

describe('openNotices', () => {
  it('says nothing for an ordinary open or a new store (nothing to replay)', () => {
    expect(openNotices(newHealth())).toEqual([]);
    expect(openNotices({ ...newHealth(), rebuilt: 'index is missing', rebuiltFrom: 'the whole journal (0 records)' })).toEqual([]);
  });

  it('names a rebuild and its source, a conversion, a cut tail, and the first findings of a degraded open', () => {
    const notices = openNotices({
      ...newHealth(), rebuilt: 'index is damaged: bad block', rebuiltFrom: 'the whole journal (12 records)',
      indexUpgraded: 'index converted from format 1 to 2', tornTailBytes: 77,
      degraded: true, findings: ['a', 'b', 'c', 'd', 'e'],
    });
    expect(notices).toEqual([
      'the index was rebuilt at open (index is damaged: bad block) from the whole journal (12 records)',
      'index converted from format 1 to 2',
      'a torn journal tail of 77 bytes (never acknowledged) was cut (a copy is in quarantine/ unless it was all zeros)',
      "the store opened degraded: a; b; c (and 2 more); run 'mailstore scrub' to see every finding",
    ]);
  });

  it('a store opened without its index reports the rebuild; the next open reports nothing', async () => {
    const root = join(tmpDir(), 'store');
    let store = await Store.open(root, { create: true, autoSnapshot: false });
    expect(openNotices(store.health)).toEqual([]);
    await store.createMailbox('INBOX');
    await store.append('INBOX', Buffer.from('Subject: x\r\n\r\nhello\r\n'));
    await store.close();
    rmSync(join(root, 'index'), { recursive: true });
    store = await Store.open(root, { autoSnapshot: false });
    const notices = openNotices(store.health);
    await store.close();
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatch(/^the index was rebuilt at open \(index is missing\) from the whole journal \(\d+ records\)$/);
    store = await Store.open(root, { autoSnapshot: false });
    expect(openNotices(store.health)).toEqual([]);
    await store.close();
  });
});
