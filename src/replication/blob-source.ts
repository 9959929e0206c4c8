// Replica-based repair: `scrub --repair --source HOST:PORT` asks a peer (a replica, or the primary
// for a damaged replica) for blobs by hash over the replication listener. The peer reads them
// verified (fetchBlob re-hashes), and the asking side hashes them again before use: a wrong
// answer is never stored.
import { MailstoreError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { hashBytes, hashHex } from '../hash/blake3.js';
import { limits } from '../limits.js';
import type { Store } from '../store/store.js';
import { readKeyFile } from './key.js';
import { connect, type Connection } from './transport.js';

/** Blobs asked for in one request (each answer frame stays under the frame limit). */
const HASHES_PER_REQUEST = 16;

export async function serveBlobs(store: Store, connection: Connection): Promise<void> {
  await connection.send({ t: 'welcome' });
  for (;;) {
    const request = await connection.next();
    if (!request) return;
    if (request.t !== 'blobs') throw new MailstoreError('INVALID', `unknown blob request ${request.t}`);
    const found: [string, Buffer][] = [];
    for (const hex of request.hashes as string[]) {
      const bytes = await store.fetchBlob(Buffer.from(hex, 'hex')).catch(() => undefined); // missing or damaged here too
      if (bytes) found.push([hex, bytes]);
    }
    await connection.send({ t: 'blobs', found });
  }
}

/** Is this repair source a node address (host:port) rather than a directory? */
export function isNodeAddress(source: string): boolean {
  return /^(\[[^\]]+\]|[^/:]+):\d{1,5}$/.test(source);
}

/** Fetches the wanted blobs the peer has into `found`, each verified by its hash. */
export async function fetchBlobsFrom(fs: FileSystem, address: string, keyFile: string | undefined, wanted: Set<string>, found: Map<string, Buffer>): Promise<void> {
  if (!keyFile) throw new MailstoreError('INVALID', `--source ${address} is a node: its replication key is needed (the store's REPLICATION names none; pass --replication-key FILE)`);
  const connection = await connect(address, await readKeyFile(fs, keyFile));
  try {
    await connection.send({ t: 'hello', kind: 'blobs', epoch: 0 });
    await connection.expect('welcome', limits.replicationHandshakeMs);
    const missing = [...wanted].filter((hex) => !found.has(hex));
    for (let i = 0; i < missing.length; i += HASHES_PER_REQUEST) {
      await connection.send({ t: 'blobs', hashes: missing.slice(i, i + HASHES_PER_REQUEST) });
      const answer = await connection.expect('blobs', limits.replicationHandshakeMs * 6);
      for (const [hex, body] of answer.found as [string, Uint8Array][]) {
        const bytes = Buffer.from(body);
        if (wanted.has(hex) && hashHex(hashBytes(bytes)) === hex) found.set(hex, bytes);
      }
    }
  } finally {
    connection.close();
  }
}
