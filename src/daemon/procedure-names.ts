// Which daemon procedures change the store, apart from procedures.ts: the client needs only these
// names, and procedures.ts imports scrub, replication and events, which a CLI command going through
// the daemon must not load (issue 16: start-up).

/** Procedures that change the store (a call in flight when the daemon dies may have committed). */
export const MUTATING_PROCEDURES: ReadonlySet<string> = new Set(['setQuota', 'changeQuota', 'undumpMailboxes', 'deleteMailboxTree', 'scrub', 'scrubEvents', 'repair', 'repairEvents', 'compact', 'snapshot', 'removeConsumer', 'setConsumerCursor', 'tierFlush', 'tierSetPolicy', 'promote', 'xfer', 'recordBackup']);
