// Names LMTP never delivers to, said by the commands that make them (mailbox create and rename,
// user rename): the admin learns it when naming, not from the bounces.
import { parseMailboxName } from '../store/validate.js';
import { printJson, printLine, warn } from './context.js';

/**
 * A mailbox LMTP never delivers to, said but not refused: LMTP lower-cases every recipient, so
 * under its default template (user/{local}/INBOX, DEFAULT_LMTP_TEMPLATE) Alice@ goes to
 * user/alice/INBOX and a user/Alice/... tree gets no mail. The user's own folders may have capitals.
 */
export function lmtpCaseWarnings(name: string): string[] {
  const [top, user, ...rest] = parseMailboxName(name);
  if (top !== 'user' || user === undefined || user === user.toLowerCase()) return [];
  const lower = user.toLowerCase();
  return [`LMTP never delivers to ${name}: recipients are lower-cased (${user}@ and ${lower}@ go to user/${lower}/INBOX with the default template user/{local}/INBOX); name it ${['user', lower, ...rest].join('/')}`];
}

/** The warnings on stderr (WARNING: ...), and the result with them under --json, else `line`. */
export async function reportWithWarnings(result: object, warnings: string[], json: boolean, line: string): Promise<void> {
  for (const warning of warnings) warn(`WARNING: ${warning}`);
  if (json) await printJson({ ...result, warnings });
  else await printLine(line);
}
