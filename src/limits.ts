// Every bound mailstore keeps, in one place, units last. Change them here, never inline.

export const limits = {
  /** Largest message accepted by default (TOO_LARGE above it); configurable per store open. */
  messageBytesMax: 64 * 1024 * 1024,
  /** A pack is rotated once it reaches this size. */
  packBytesMax: 1024 * 1024 * 1024,
  /** A journal segment is rotated once it reaches this size (a segment is read whole: this bounds that memory). */
  journalSegmentBytesMax: 16 * 1024 * 1024,
  /** A journal record payload larger than this is damage, not data. */
  journalRecordBytesMax: 64 * 1024 * 1024,
  /** Group commit: most mutations in one batch. */
  batchMutationsMax: 4096,
  /** Group commit: most new blob bytes in one batch (one huge message always fits alone). */
  batchBlobBytesMax: 64 * 1024 * 1024,
  /** Mailbox names. */
  mailboxNameBytesMax: 1024,
  mailboxNameComponentBytesMax: 255,
  mailboxNameDepthMax: 64,
  /** User / ACL identifier names. */
  identifierBytesMax: 255,
  flagBytesMax: 255,
  flagsPerMessageMax: 128,
  /** Expunges of a mailbox being deleted are journalled in chunks of this many UIDs. */
  deleteChunkMessages: 10_000,
  /** Retention (expunge --before) journals its expunges in records of at most this many UIDs. */
  retentionChunkMessages: 10_000,
  /** search: most bytes of a message's header section parsed for --header/--subject/--from. */
  searchHeaderBytesMax: 256 * 1024,
  /** Replay and rebuild write a LevelDB batch once this many keys are pending. */
  replayBatchKeys: 20000,
  /**
   * Rebuild: the Bloom filter of the keys written so far. 8 MiB keeps false positives under 1 %
   * up to ~5 M keys (about 1.5 M messages); a larger store only pays more LevelDB lookups.
   */
  rebuildKeyFilterBytes: 8 * 1024 * 1024,
  /** Chunk size for streaming reads. */
  readChunkBytes: 1024 * 1024,
  /** readMessages: message records read from the index in one round trip. */
  readBatchMessages: 256,
  /** readMessages: most body bytes read ahead (in pack order) before they are yielded; one bigger message goes alone. */
  readBatchBytes: 8 * 1024 * 1024,
  /** readMessages: most body bytes, and messages, read between two turns of the event loop. */
  readTurnBytes: 1024 * 1024,
  readTurnMessages: 32,
  /** Pack scans (scrub, reconstruct) read this much at a time; a bigger record streams through it. */
  scanChunkBytes: 4 * 1024 * 1024,
  /**
   * Scrub's pack pass returns to the event loop after this many records. Its reads and index
   * lookups are synchronous, so otherwise it never would: the native hasher's result buffers are
   * freed by finalizers that run there, and they piled up one per blob (native memory +25 MiB over
   * 95k blobs, measured), while a daemon's other work waited for the whole pass.
   */
  scrubRecordsPerTurn: 1000,
  /** Scrub's pack pass looks its records up in the index this many at a time (one getMany). */
  scrubLookupBatch: 1000,
  /** Scrub hashes on worker threads when it has at least this much to read (a worker costs ~30 ms to start). */
  scrubPoolBytesMin: 64 * 1024 * 1024,
  /** Chunks read ahead while workers hash earlier ones (each holds scanChunkBytes). */
  scanChunksInFlight: 4,
} as const;

export const importLimits = {
  /** An import batch (one appendBatch, one journal record, one fsync pair) holds at most this many messages... */
  batchMessagesMax: 500,
  /** ...and at most this many message bytes (one bigger message goes alone). */
  batchBytesMax: 8 * 1024 * 1024,
  /** Batches submitted and not yet committed while the next is read (each holds its bytes). */
  batchesInFlight: 2,
  /** Unreadable files listed one by one in a summary; the rest are counted. */
  skippedListedMax: 100,
} as const;
