// Users as Cyrus sees them: the mailbox tree user/NAME/... plus every ACL entry naming NAME. A
// rename changes all of it in ONE journal record (names, owner, ACLs, the reverse ACL map and the
// tree's quota roots move together, so a crash leaves either the old user or the new one); a delete frees every name
// and ACL entry (and the tree's quota roots) in one intent record, then expunges each mailbox as
// deleteMailbox does.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { MailstoreError } from '../errors.js';
import { limits } from '../limits.js';
import { keys, decodeNameKey, decodeRightsKey } from '../keys/index-keys.js';
import type { IndexView } from '../index/index-db.js';
import type { MailboxInfo, Op, RightsRecord } from './records.js';
import { moveQuotaRoots } from './quota.js';
import type { Store } from './store.js';
import { checkRecordSize } from './prepare.js';
import { userTree } from './user-name.js';
import { checkDeletable, formatMailboxName, normalizeRights, parseMailboxName, renamedMailboxName, type DeleteOptions } from './validate.js';

export interface RenameUserResult {
  from: string;
  to: string;
  /** Mailboxes of the tree user/FROM/... now under user/TO. */
  mailboxes: number;
  /** Mailboxes (in the tree or elsewhere) whose ACL named FROM. */
  aclEntries: number;
}

export interface DeleteUserResult {
  user: string;
  mailboxes: number;
  messages: number;
  aclEntries: number;
}

/** The mailboxes at or below `prefix`: [name, id], committed state (callers hold the writer exclusively). */
async function treeOf(store: Store, prefix: readonly string[]): Promise<[string[], Buffer][]> {
  const out: [string[], Buffer][] = [];
  for await (const [key, id] of store.administration().index.entries<Buffer>({ prefix: keys.name(prefix) })) out.push([decodeNameKey(key), Buffer.from(id)]);
  return out;
}

/**
 * Every ACL entry naming `user`, from the reverse map: [mailbox id, identifier, rights]. Its
 * negative rights ("-user", RFC 4314) too: left behind, a renamed user lost them and the next
 * user of the old name got them.
 */
async function aclEntriesOf(store: Store, user: string): Promise<[Buffer, string, string][]> {
  const out: [Buffer, string, string][] = [];
  for (const identifier of [user, `-${user}`]) {
    for await (const [key, value] of store.administration().index.entries<RightsRecord>({ prefix: keys.rightsPrefix(identifier) })) {
      if (decodeRightsKey(key).user !== identifier) continue; // the prefix is exact (NUL-terminated), this is belt and braces
      out.push([Buffer.from(value.id), identifier, value.rights]);
    }
  }
  return out;
}

export async function renameUser(store: Store, from: string, to: string): Promise<RenameUserResult> {
  const source = userTree(from);
  const target = userTree(to);
  const [oldUser, newUser] = [source[1], target[1]];
  if (oldUser === newUser) throw new MailstoreError('INVALID', `cannot rename user ${from} to itself`);
  return store.administration().mutate({
    exclusive: true, // range reads of the tree and the reverse map must see every earlier batch
    prepare: async ({ view }) => {
      await store.administration().index.settle(); // the range reads below must not miss a batch still landing
      const tree = await treeOf(store, source);
      const entries = await aclEntriesOf(store, oldUser);
      if (tree.length === 0 && entries.length === 0) throw new MailstoreError('NOT_FOUND', `no user ${from}: no mailbox under ${formatMailboxName(source)} and no ACL entry`, { path: from });
      for await (const _ of store.administration().index.entries({ prefix: keys.name(target), limit: 1 })) {
        throw new MailstoreError('EXISTS', `user ${to} already has mailboxes under ${formatMailboxName(target)}`, { path: formatMailboxName(target) });
      }
      await prefetchInfos(view, [...tree.map(([, id]) => id), ...entries.map(([id]) => id)]);
      const ops: Op[] = [];
      for (const [name, id] of tree) {
        // a longer user name must not take a mailbox past the name bounds: no call could name it then
        ops.push({ op: 'mailbox.rename', id, to: renamedMailboxName(name, source, target, `renaming user ${oldUser} to ${newUser}`) });
        const box = view.getShared<MailboxInfo>(keys.info(id));
        if (box?.owner === oldUser) ops.push({ op: 'mailbox.owner', id, owner: newUser });
      }
      for (const [id, identifier, rights] of entries) ops.push(...moveAclEntry(view, id, identifier, identifier === oldUser ? newUser : `-${newUser}`, rights));
      ops.push(...(await moveQuotaRoots(store.administration().index, source, target)));
      checkRecordSize(ops, `renaming user ${oldUser} (${tree.length} mailboxes)`); // one record: past the bound the journal would refuse it and stop the store
      return { ops, result: { from: oldUser, to: newUser, mailboxes: tree.length, aclEntries: entries.length } };
    },
  });
}

/**
 * The mailbox entries of `ids` in one round trip off the event loop, for getShared in the prepare
 * and in the apply (apply.ts info): a user of 5,000 mailboxes read them with 2-3 synchronous
 * LevelDB reads each, and the daemon answered no one for seconds.
 */
async function prefetchInfos(view: IndexView, ids: readonly Buffer[]): Promise<void> {
  // in pieces, a turn of the event loop after each: the decoding of 5,000 entries, the ops made of
  // them and the record's apply were one stretch of a second without it (load ~10 on 2 cores)
  for (let at = 0; at < ids.length; at += limits.deleteChunkMailboxes) {
    await view.prefetch(ids.slice(at, at + limits.deleteChunkMailboxes).map((id) => keys.info(id)));
    await nextTurn();
  }
}

/** OLD's entry becomes NEW's (merged with any NEW already had there); OLD and NEW: identifiers. */
function moveAclEntry(view: IndexView, id: Buffer, oldUser: string, newUser: string, rights: string): Op[] {
  const box = view.getShared<MailboxInfo>(keys.info(id));
  const merged = normalizeRights((box?.acl[newUser] ?? '') + rights);
  return [
    { op: 'acl.set', id, identifier: oldUser, rights: '' },
    { op: 'acl.set', id, identifier: newUser, rights: merged },
  ];
}

export async function deleteUser(store: Store, name: string, options?: DeleteOptions): Promise<DeleteUserResult> {
  const tree = userTree(name);
  const user = tree[1];
  checkDeletable(name, 0, options);
  const begun = await store.administration().mutate({
    exclusive: true,
    prepare: async ({ view }) => {
      await store.administration().index.settle();
      const boxes = await treeOf(store, tree);
      const entries = await aclEntriesOf(store, user);
      if (boxes.length === 0 && entries.length === 0) throw new MailstoreError('NOT_FOUND', `no user ${name}: no mailbox under ${formatMailboxName(tree)} and no ACL entry`, { path: name });
      const inTree = new Set(boxes.map(([, id]) => id.toString('hex')));
      await prefetchInfos(view, [...boxes.map(([, id]) => id), ...entries.map(([id]) => id)]);
      const ops: Op[] = [];
      let messages = 0;
      // ACL entries first: a deleteBegin drops the deleted mailbox's reverse entries itself.
      for (const [id, identifier] of entries) if (!inTree.has(id.toString('hex'))) ops.push({ op: 'acl.set', id, identifier, rights: '' });
      for (const [, id] of boxes) {
        messages += view.getShared<MailboxInfo>(keys.info(id))?.messages ?? 0;
        ops.push({ op: 'mailbox.deleteBegin', id });
      }
      checkDeletable(formatMailboxName(tree), messages, options, true);
      ops.push(...(await moveQuotaRoots(store.administration().index, tree, undefined)));
      checkRecordSize(ops, `deleting user ${user} (${boxes.length} mailboxes)`);
      return { ops, result: { ids: boxes.map(([, id]) => id), messages, aclEntries: entries.length } };
    },
  });
  await store.administration().finishMailboxDeletes(begun.ids);
  return { user, mailboxes: begun.ids.length, messages: begun.messages, aclEntries: begun.aclEntries };
}

/** mailbox delete --recursive: NAME and everything below it, freed in one intent record. */
export async function deleteMailboxTree(store: Store, name: string, options?: DeleteOptions): Promise<{ mailboxes: number; messages: number }> {
  const prefix = parseMailboxName(name);
  checkDeletable(name, 0, options);
  const begun = await store.administration().mutate({
    exclusive: true,
    prepare: async ({ view }) => {
      await store.administration().index.settle();
      const boxes = await treeOf(store, prefix);
      if (boxes.length === 0) throw new MailstoreError('NOT_FOUND', `no mailbox named ${name} (nor any below it)`, { path: name });
      await prefetchInfos(view, boxes.map(([, id]) => id));
      let messages = 0;
      for (const [, id] of boxes) messages += view.getShared<MailboxInfo>(keys.info(id))?.messages ?? 0;
      checkDeletable(name, messages, options, true);
      const ops = boxes.map(([, id]): Op => ({ op: 'mailbox.deleteBegin', id }));
      ops.push(...(await moveQuotaRoots(store.administration().index, prefix, undefined)));
      checkRecordSize(ops, `deleting ${name} (${boxes.length} mailboxes)`);
      return { ops, result: { ids: boxes.map(([, id]) => id), messages } };
    },
  });
  await store.administration().finishMailboxDeletes(begun.ids);
  return { mailboxes: begun.ids.length, messages: begun.messages };
}

/** Messages at or below NAME, for the CLI's refusal to delete a non-empty tree without --force. */
export async function messagesInTree(store: Store, name: string): Promise<number> {
  const tree = await treeOf(store, parseMailboxName(name));
  // one round trip off the event loop (a daemon answers this for a client's `user delete`): a
  // synchronous read a mailbox held its every other client while a tree of 5,000 was counted
  const boxes = await store.administration().index.getMany<MailboxInfo>(tree.map(([, id]) => keys.info(id)));
  let messages = 0;
  for (const box of boxes) {
    if (box instanceof MailstoreError) throw box;
    messages += box?.messages ?? 0;
  }
  return messages;
}
