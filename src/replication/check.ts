import type { Store } from '../store/store.js';
import type { Connection } from './transport.js';
export async function serveCheck(_store: Store, _connection: Connection, _ok: void): Promise<void> {}
