// A mailbox an older version let 'anyone' own (refused since: validate.ts normalizeOwner) is still
// restored from a backup: without that owner, its ACL as it was, its mail all there.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { json, ok, requireBuilt, tempDir } from '../cli/helpers.js';

describe('restore of a mailbox owned by "anyone"', () => {
  it('restores it without the owner, with its ACL and messages', { timeout: 60_000 }, async () => {
    requireBuilt();
    const base = tempDir('mailstore-restore-owner-');
    const dir = join(base, 'store');
    const store = await Store.open(dir, { create: true });
    const acl = { anyone: 'aeiklnprstwx' };
    const older = { op: 'mailbox.create', id: Buffer.alloc(16, 7), name: ['shared', 'x'], uidValidity: 5, acl, owner: 'anyone', created: 0 } as const;
    await store.administration().mutate({ prepare: async () => ({ ops: [older], result: undefined }) });
    await store.append('shared/x', Buffer.from('Subject: kept\r\n\r\nbody\r\n'));
    await store.close();
    const repo = join(base, 'repo');
    await ok(['backup', '--repo', repo], { store: dir });
    expect(await json(['restore', '--repo', repo, '--mailbox', 'shared/x', '--as', 'shared/y', '--to', dir])).toMatchObject({ messages: 1, mailboxes: 1 });
    expect(await json(['acl', 'get', 'shared/y'], { store: dir })).toEqual({ mailbox: 'shared/y', acl });
    expect((await ok(['fetch', 'shared/y', '1'], { store: dir })).toString()).toContain('Subject: kept');
  });
});
