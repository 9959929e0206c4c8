// Every bound mailstore keeps, in one place, units last. Change them here, never inline.

export const limits = {
  /** Largest message accepted by default (TOO_LARGE above it); configurable per store open. */
  messageBytesMax: 64 * 1024 * 1024,
  /** A pack is rotated once it reaches this size. */
  packBytesMax: 1024 * 1024 * 1024,
  /** A journal segment is rotated once it reaches this size (a segment is read whole: this bounds that memory). */
  journalSegmentBytesMax: 16 * 1024 * 1024,
  /** Open reads this much of the oldest journal segment to see whether it starts with a checkpoint. */
  journalFirstRecordReadBytes: 64 * 1024,
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
  /** Flags one message may carry, after every change (not only per request). */
  flagsPerMessageMax: 128,
  /** Entries in one mailbox's ACL, after every change: the ACL is one index value read on every lookup. */
  aclEntriesPerMailboxMax: 256,
  /**
   * Internal dates accepted, in ms since the epoch: 1970-01-01 through 9999-12-31 UTC. Maildir names
   * carry epoch seconds and mbox From_ lines a four-digit year, so every stored date can be exported.
   */
  internalDateMsMin: 0,
  internalDateMsMax: 253_402_300_799_999,
  /**
   * A message's envelope sender (the mbox From_ line's): RFC 5321 caps a path at 256 octets with
   * its angle brackets, so 254 without; one printable ASCII token, as a From_ line needs it.
   */
  envelopeFromBytesMax: 254,
  /** Zone of a message's internal date, minutes east of UTC: the real zones span -12:00 to +14:00. */
  dateZoneMinutesMin: -720,
  dateZoneMinutesMax: 840,
  /** Mailbox name -> info entries an open store caches (the cache is cleared whole when full). */
  mailboxCacheEntries: 1024,
  /** Replay problems listed in store.health.findings; later ones are dropped (health.degraded says there were some). */
  healthFindingsMax: 1000,
  /** Open probes a possibly damaged index in a child process (src/index/probe.ts): its time limit... */
  indexProbeTimeoutMs: 60_000,
  /** ...and the keys it reads once the index has opened. */
  indexProbeKeys: 10_000,
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
  /** A checkpoint record (a journal written from the index) holds at most this many entries of one kind. */
  checkpointEntriesPerRecord: 4096,
  /**
   * scrub --repair refuses (without --force) when more than this share of the stored blobs is
   * damaged or missing: that looks like a wrong or missing partition, not a few bad blocks. (A
   * rebuild of the index or journal has no share: it refuses when it would keep anything less.)
   */
  repairDamagedShareMax: 0.25,
  /** Chunk size for streaming reads. */
  readChunkBytes: 1024 * 1024,
  /**
   * Writes, and vectored writes, up to this size are made synchronously (src/fs/node-fs.ts): they
   * only copy into the page cache, where a thread-pool round trip costs more than the copy.
   */
  syncWriteBytesMax: 256 * 1024,
  /** Buffers handed to one writev call (IOV_MAX is 1024 on Linux). */
  writevPartsMax: 512,
  /** `*` in a UID set: how far below uidNext to look for the largest UID before scanning the whole mailbox. */
  largestUidProbeUids: 1024,
  /** readMessages: message records read from the index in one round trip. */
  readBatchMessages: 256,
  /** readMessages: most body bytes read ahead (in pack order) before they are yielded; one bigger message goes alone. */
  readBatchBytes: 8 * 1024 * 1024,
  /** readMessages: most body bytes, and messages, read between two turns of the event loop. */
  readTurnBytes: 1024 * 1024,
  readTurnMessages: 32,
  /** readMessages: two records of a pack at most this far apart are read with one pread (the bytes between are read and skipped). */
  readGapBytes: 16 * 1024,
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
  /** Scrub's index pass reads a key space this many entries at a time (one native call each). */
  scrubIndexReadEntries: 1000,
  /**
   * scrub --mailbox remembers this many blob hashes it already verified (a message copied into
   * several folders is read once); past it the set starts afresh, so memory stays bounded.
   */
  scopedScrubVerifiedHashesMax: 200_000,
  /**
   * Scrub localises a refcount disagreement in hash partitions of about this many blobs, one pass
   * over the messages each: this bounds the memory of the exact comparison.
   */
  refcountPartitionBlobs: 500_000,
  /** scrub --max-rate sleeps only once it is at least this far ahead of the rate (a shorter timer costs more than it saves). */
  throttleSleepMsMin: 5,
  /** scrub --repair writes the blobs it found in its sources (and --drop-unreferenced its marks) this many at a time (one batch each). */
  repairRelocateBlobs: 256,
  /** reconstruct --from-packs adopts unreferenced blobs into lost+found this many at a time (one batch each). */
  lostFoundAdoptBlobs: 1000,
  /** ...and sorts them by the Date header found in this much of each message's start. */
  dateHeaderScanBytes: 64 * 1024,
  /** Scrub hashes on worker threads when it has at least this much to read (a worker costs ~30 ms to start). */
  scrubPoolBytesMin: 64 * 1024 * 1024,
  /** Chunks read ahead while workers hash earlier ones (each holds scanChunkBytes). */
  scanChunksInFlight: 4,
  /** A scan hashes a chunk in its own thread when the pool's workers already hold this many chunks each. */
  scanChunksPerWorker: 2,
  /**
   * The CLI waits this long for a store another process holds before LOCKED (--wait, --no-wait),
   * as mail servers' admin tools do; the library waits only when asked (StoreOptions.lockWaitMs).
   */
  cliLockWaitSeconds: 30,
  /** A waiting opener retries the kernel lock this often (node has no blocking fcntl). */
  lockRetryMs: 100,
  /** The holder writes its pid just after taking the lock: a LOCKED message re-reads LOCK this long for it. */
  lockHolderReadMs: 300,
  /** The CLI tells a person at a terminal that it is waiting for the lock once it has waited this long. */
  lockNoticeMs: 1000,
  /** Most hash worker threads scrub --threads accepts. */
  hashThreadsMax: 64,
  /** A progress line on a terminal is redrawn at most this often. */
  progressRedrawMs: 200,
  /** A Maildir's dovecot-keywords file holds at most 26 short lines; anything bigger is not one. */
  maildirKeywordsFileBytesMax: 64 * 1024,
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
  /**
   * Entries skipped before the resume point that the next run retries, kept in the import cursor
   * (each costs its name in every batch's journal record); an import that skips more stops.
   */
  retryEntriesMax: 1000,
  /** Folders nested deeper than this below an import source (Maildir or .eml tree) are reported, not walked. */
  folderDepthMax: 32,
} as const;
