import type { Store } from '../store/store.js';
import type { Connection, Log } from './transport.js';
export async function serveXfer(_store: Store, _connection: Connection, _log: Log): Promise<void> {}
