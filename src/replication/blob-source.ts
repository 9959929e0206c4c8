import type { Store } from '../store/store.js';
import type { Connection } from './transport.js';
export async function serveBlobs(_store: Store, _connection: Connection): Promise<void> {}
