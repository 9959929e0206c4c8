// A user name as the tree of mailboxes it owns (user/NAME), checked alike by the store's user
// commands and by the client before it counts that tree for them (apart from validate.ts, which
// every append loads; these only the user commands).
import { MailstoreError, isMailstoreError } from '../errors.js';
import { normalizeIdentifier, parseMailboxName } from './validate.js';

const USER_ROOT = 'user';

/** The user's tree as name components (user/NAME), refusing names that would not be one component. */
export function userTree(name: string): string[] {
  let user: string;
  try {
    user = normalizeIdentifier(name);
  } catch (error) {
    // said as what it is here: 'invalid ACL identifier ""' for 'user rename alice ""' named no user
    if (!isMailstoreError(error, 'INVALID')) throw error;
    throw new MailstoreError('INVALID', error.message.replace('invalid ACL identifier', 'invalid user name'));
  }
  if (user === 'anyone') throw new MailstoreError('INVALID', '"anyone" is not a user: its ACL entries are changed with acl set');
  parseMailboxName(`${USER_ROOT}/${user}`); // a user name is one valid mailbox name component
  if (user.includes('/')) throw new MailstoreError('INVALID', `user name ${JSON.stringify(name)} contains "/"`);
  return [USER_ROOT, user];
}
