// Listen addresses as the daemon's options give them: 'HOST:PORT' ('[::1]:PORT' for IPv6) or
// 'unix:PATH' (where the protocol allows it).
import { MailstoreError } from '../errors.js';

export type ListenAddress = { host: string; port: number } | { path: string };

export function parseListen(where: string, what: string, options: { unix: boolean }): ListenAddress {
  if (options.unix && where.startsWith('unix:')) {
    const path = where.slice('unix:'.length);
    if (path === '') throw new MailstoreError('INVALID', `${what} listen address unix: needs a path`);
    // relative to whatever directory the daemon was started in, where its client would not look
    // (Postfix's lmtp:unix:mailstore/lmtp is relative to its queue directory, /var/spool/postfix)
    if (!path.startsWith('/')) throw new MailstoreError('INVALID', `${what} listen address ${JSON.stringify(where)}: give an absolute path (unix:/var/spool/postfix/mailstore/lmtp)`);
    checkSocketPath(path, `the ${what} socket`, `a shorter unix:PATH`);
    return { path };
  }
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):([0-9]{1,5})$/.exec(where);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) {
    throw new MailstoreError('INVALID', `${what} listen address ${JSON.stringify(where)}: give HOST:PORT ([::1]:PORT for IPv6)${options.unix ? ' or unix:PATH' : ''}`);
  }
  return { host: match[1] ?? match[2], port };
}

/** The longest path a unix socket can have on Linux: sun_path is 108 bytes with its final NUL. */
const SOCKET_PATH_BYTES_MAX = 107;

/**
 * INVALID when `path` is too long for a unix socket. Node does not refuse one: libuv cuts it to
 * sun_path's length and binds (or connects to) that shorter path, so `serve` in a store 90 bytes
 * deep listened somewhere else and then failed 'NOT_FOUND: setting the mode of the socket'.
 */
export function checkSocketPath(path: string, what: string, instead: string): void {
  const bytes = Buffer.byteLength(path);
  if (socketPathFits(path)) return;
  throw new MailstoreError('INVALID', `${what} ${path} is ${bytes} bytes long; a unix socket's path holds at most ${SOCKET_PATH_BYTES_MAX}: give ${instead}`, { path });
}

/** Whether `path` is short enough for a unix socket (checkSocketPath). */
export function socketPathFits(path: string): boolean {
  return Buffer.byteLength(path) <= SOCKET_PATH_BYTES_MAX;
}

/** 'HOST:PORT' of a bound TCP server (the real port when 0 was asked for). */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export function listenError(error: unknown, what: string, where: string): MailstoreError {
  const code = (error as NodeJS.ErrnoException).code;
  const kind = code === 'EACCES' ? 'ACCESS' : code === 'EADDRINUSE' ? 'EXISTS' : 'IO';
  return new MailstoreError(kind, `${what} cannot listen on ${where}: ${code ?? String(error)}`, { path: where, cause: error });
}
