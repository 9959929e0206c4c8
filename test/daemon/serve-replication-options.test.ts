// `mailstore promote` through a replica's daemon: the daemon's own promote (serve-replication.ts)
// took no options, so --quarantine-damaged-pending and --force never reached the replica's promote.
import { describe, expect, it } from 'vitest';
import { ServeReplication } from '../../src/daemon/serve-replication.js';
import type { DaemonServer } from '../../src/daemon/server.js';
import type { Logger } from '../../src/daemon/log.js';
import type { PromoteOptions, ReplicaHandle } from '../../src/replication/index.js';

describe("a replica daemon's promote", () => {
  it('hands the options it was called with to the replica', async () => {
    const given: (PromoteOptions | undefined)[] = [];
    const replica = { promote: async (options?: PromoteOptions) => { given.push(options); return { epoch: 2, seq: 9, oldPrimaryFenced: true, heldSeq: 9, uidValidity: 'kept', mailboxesRenewed: 0 }; } } as unknown as ReplicaHandle;
    const logger = { info: () => undefined } as unknown as Logger;
    const serving = new ServeReplication({}, logger);
    (serving as unknown as { replica: ReplicaHandle }).replica = replica;
    const server = { procedureOverrides: {}, onStopping: [], store: {} } as unknown as DaemonServer;
    serving.wire(server);
    const promote = server.procedureOverrides.promote as (options?: PromoteOptions) => Promise<unknown>;
    await promote({ quarantineDamagedPending: true, force: true });
    expect(given).toEqual([{ quarantineDamagedPending: true, force: true }]);
  });
});
