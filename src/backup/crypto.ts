// Encryption of a backup repository (docs/BACKUP.md, "Encryption"): one secret in a key file,
// three keys derived from it with HKDF (sealing, blob ids, the key check), AES-256-GCM for every
// sealed byte. Blob ids are keyed, so the repository does not reveal which known messages it holds.
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { MailstoreError } from '../errors.js';

export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
const KEY_CHECK_TEXT = 'mailstore backup key check v1';

/** The keys of an encrypted repository, derived from its key file and the config's salt. */
export interface RepositoryKeys {
  seal: Buffer;
  blobId: Buffer;
  check: Buffer;
}

/** Encryption parameters kept in the repository's config (nothing secret). */
export interface EncryptionParams {
  cipher: 'aes-256-gcm';
  kdf: 'hkdf-sha256';
  /** base64 */
  salt: string;
  /** base64 HMAC-SHA256 of a fixed text under the check key: a wrong key file is told before anything is read or written. */
  keyCheck: string;
}

export function deriveKeys(secret: Buffer, salt: Buffer): RepositoryKeys {
  const bytes = Buffer.from(hkdfSync('sha256', secret, salt, 'mailstore backup keys v1', 96));
  return { seal: bytes.subarray(0, 32), blobId: bytes.subarray(32, 64), check: bytes.subarray(64, 96) };
}

export function newEncryptionParams(secret: Buffer): { params: EncryptionParams; keys: RepositoryKeys } {
  const salt = randomBytes(32);
  const keys = deriveKeys(secret, salt);
  return { keys, params: { cipher: 'aes-256-gcm', kdf: 'hkdf-sha256', salt: salt.toString('base64'), keyCheck: keyCheck(keys).toString('base64') } };
}

function keyCheck(keys: RepositoryKeys): Buffer {
  return createHmac('sha256', keys.check).update(KEY_CHECK_TEXT).digest();
}

/** The keys for `params`, or INVALID when the key file is not the one the repository was made with. */
export function openKeys(secret: Buffer, params: EncryptionParams, path: string): RepositoryKeys {
  const keys = deriveKeys(secret, Buffer.from(params.salt, 'base64'));
  const expected = Buffer.from(params.keyCheck, 'base64');
  const actual = keyCheck(keys);
  if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) {
    throw new MailstoreError('INVALID', `the key file does not open the backup repository at ${path} (wrong key file?); nothing was read or written`, { path });
  }
  return keys;
}

/** A blob's name in the repository: its store hash, or a keyed hash of it when encrypted. */
export function blobIdOf(hash: Buffer, keys: RepositoryKeys | undefined): Buffer {
  return keys ? createHmac('sha256', keys.blobId).update(hash).digest() : hash;
}

/** nonce | ciphertext | tag; `aad` binds the sealed bytes to where they belong (a blob id, a file kind). */
export function seal(keys: RepositoryKeys, plain: Buffer, aad: Buffer): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', keys.seal, nonce);
  cipher.setAAD(aad);
  const body = cipher.update(plain);
  const last = cipher.final();
  return Buffer.concat([nonce, body, last, cipher.getAuthTag()]);
}

/** The plain bytes, or CORRUPT when the sealed bytes or their place were changed. */
export function unseal(keys: RepositoryKeys, sealed: Buffer, aad: Buffer, what: string, path: string): Buffer {
  if (sealed.length < NONCE_BYTES + TAG_BYTES) throw new MailstoreError('CORRUPT', `${what} in ${path} is too short to be sealed`, { path });
  const decipher = createDecipheriv('aes-256-gcm', keys.seal, sealed.subarray(0, NONCE_BYTES));
  decipher.setAAD(aad);
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES)), decipher.final()]);
  } catch (error) {
    throw new MailstoreError('CORRUPT', `${what} in ${path} fails authentication (damaged or replaced)`, { path, cause: error });
  }
}
