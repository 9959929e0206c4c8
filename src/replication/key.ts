// The replication key: a shared secret in a file (`--replication-key FILE`) that every node of a
// set holds. It is never sent: TLS-PSK proves both sides hold it and keys the encryption from it.
import { hkdfSync } from 'node:crypto';
import { MailstoreError, fromSystemError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { refuseSecretReadableByOthers } from '../fs/secret-file.js';

/** Secrets shorter than this are refused (a 32-byte random key, `openssl rand -hex 32`, is meant). */
const SECRET_BYTES_MIN = 16;

/**
 * Reads the key file: hex text (as `openssl rand -hex 32` writes it) or raw bytes. A file that
 * others may read is refused: the key is the only thing between the network and the mail.
 */
export async function readKeyFile(fs: FileSystem, path: string): Promise<Buffer> {
  const stat = await fs.stat(path).catch((e) => { throw fromSystemError(e, 'reading the replication key', path); });
  refuseSecretReadableByOthers(stat, path, 'the replication key');
  const bytes = await fs.readFile(path).catch((e) => { throw fromSystemError(e, 'reading the replication key', path); });
  const text = bytes.toString('latin1').trim();
  const secret = /^([0-9a-fA-F]{2})+$/.test(text) ? Buffer.from(text, 'hex') : bytes;
  if (secret.length < SECRET_BYTES_MIN) {
    throw new MailstoreError('INVALID', `the replication key ${path} holds ${secret.length} bytes; at least ${SECRET_BYTES_MIN} are needed (make one with 'openssl rand -hex 32 > ${path}')`, { path });
  }
  return derivePsk(secret);
}

/** The TLS pre-shared key: HKDF of the secret, so the file's bytes are used for nothing else. */
export function derivePsk(secret: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, 'mailstore-replication', 'tls-psk-v1', 32));
}
