// Every bound mailstore keeps, in one place, units last. Change them here, never inline.
import { totalmem } from 'node:os';

export const limits = {
  /** Largest message accepted by default (TOO_LARGE above it); configurable per store open. */
  messageBytesMax: 64 * 1024 * 1024,
  /**
   * The largest StoreOptions.messageBytesMax a store opens with: a message is read back with one
   * read of its pack record (48-byte header and body), and node reads at most 2^31 - 1 bytes in one
   * call (past it, its file read aborts the process; its writev reports a negative count).
   */
  messageBytesSettingMax: 2 ** 31 - 1 - 48,
  /** A pack is rotated once it reaches this size. */
  packBytesMax: 1024 * 1024 * 1024,
  /**
   * Compaction rewrites a pack once this share of its bytes is dead (records no message uses,
   * headers included). 0.10 keeps packs within ~1.1x of live bytes at the cost of rewriting a pack
   * that is 90 % live: restic's prune defaults to 5 % unused, Dovecot's purge to any.
   */
  compactDeadRatio: 0.1,
  /**
   * A compaction that rewrites packs anyway also takes in every sealed local pack smaller than this
   * share of the pack size bound (1 GiB packs: 32 MiB), however live: each compaction's output of
   * survivors is such a pack, and none of them ever passed compactDeadRatio again (old mail is
   * rarely expunged), so their number grew by one a compaction for good (measured: 8 compactions,
   * 8 packs of 6 KB each). At most this much live data is copied again a compaction.
   */
  compactSmallPackShare: 1 / 32,
  /** The background compactor (StoreOptions.autoCompact) keeps a released blob this long before reclaiming it. */
  compactGraceMs: 60 * 60 * 1000,
  /** Tombstones (expunged uids' change-log entries) are kept this long (Cyrus's expunge_days): tombstone-expiry.ts. */
  tombstoneRetentionMs: 30 * 24 * 60 * 60 * 1000,
  /** ...a new expiry mark (time, modseq) at most every 1/Nth of it... */
  tombstoneMarksPerRetention: 16,
  /** ...the background expiry at most this often... */
  tombstoneExpiryIntervalMs: 60 * 60 * 1000,
  /** ...dropping at most this many a record. */
  tombstonesPerRecord: 20_000,
  /** ...wakes up at most this often, and only when the dead bytes passed compactDeadBytesMin... */
  compactIntervalMs: 60 * 1000,
  compactDeadBytesMin: 64 * 1024 * 1024,
  /** ...and after a round that reclaimed nothing waits up to this long (doubling from compactIntervalMs). */
  compactBackoffMsMax: 60 * 60 * 1000,
  /**
   * Compaction reads the live records of a pack in runs: two at most this far apart are read with
   * one pread (the bytes between read and skipped), a run at most compactWriteBytes long. Small,
   * as readGapBytes: on a cold page cache every skipped byte is read from the disk (a profile of
   * the churn store with its pack out of the cache spent 1.6 s of 2.2 s CPU-profiled in preads).
   */
  compactReadGapBytes: 16 * 1024,
  /** The background compactor (a change-log consumer) reads at most this many journal records a round. */
  compactConsumerRecords: 100_000,
  /** Compaction writes its output pack in runs of this many bytes. */
  compactWriteBytes: 4 * 1024 * 1024,
  /**
   * A compaction run copying fewer bytes than this hashes its records in the calling thread: the
   * hash worker (a second V8 isolate, ~10-20 MB of RSS) pays only when there is much to hash. The 1M
   * churn shape copies ~130 KB a run of 10k entries (hashed here in well under a millisecond); the
   * 20k corpus copies 120 MB in one run (on the worker, beside the reads).
   */
  compactHashWorkerBytesMin: 8 * 1024 * 1024,
  /** A compaction's new pack gets an fdatasync in the background every this many bytes written (PackWriter.syncBehind): its final sync has only the tail left. */
  compactSyncBehindBytes: 32 * 1024 * 1024,
  /** Most relocate and forget entries in one journal record of a compaction commit (blob.relocateRun / forgetRun: 40-56 bytes an entry, a record ~ 2 MiB). */
  compactOpsPerRecord: 40_000,
  /**
   * Compaction copies and commits the candidate packs' blob entries in runs of at most this many:
   * its memory bound. Measured at 200k entries (90 % released), peak RSS 345 MB at 50k a run,
   * 234 MB at 10k, 221 MB at 5k; each run costs a pack and a journal fdatasync. At 1M entries
   * (90 % released, session 12): 253-259 MB at 10k, 244-245 MB at 5k (200 runs: ~1 s more of a
   * 90 s compaction); the 20k churn bench copies ~4k records, one run either way.
   */
  compactChunkEntries: 5_000,
  /**
   * Compaction's planning scan of B keeps every entry (flat, ~65 bytes each: ~13 MB at most) while
   * B has at most this many, so the copy needs no second scan when no batch committed between the
   * scan and the seal (compact.ts); a larger B is scanned again.
   */
  compactPlanEntriesMax: 200_000,
  /** After its commit, compaction waits this long for readers still inside a retired pack before leaving it for later. */
  compactReaderWaitMs: 30_000,
  /** A journal segment is rotated once it reaches this size (a segment is read whole: this bounds that memory). */
  journalSegmentBytesMax: 16 * 1024 * 1024,
  /** Journal segments kept open for reading inline bodies (the least recently used is closed beyond it). */
  journalReadHandlesMax: 16,
  /**
   * Packs kept open for reading (the least recently used one no reader is inside is closed beyond
   * it): without a bound a daemon reading a store of thousands of packs held a descriptor for each
   * and met EMFILE. With LevelDB's indexOpenFilesMax and the journal's, well under a 1024 ulimit.
   */
  packReadHandlesMax: 64,
  /** Record offsets kept for reading inline bodies by seq (journal/record-offsets.ts; 4 bytes each once built). */
  journalOffsetEntriesMax: 4_000_000,
  /**
   * Messages up to this size are stored inside their journal record (StoreOptions.inlineBodyBytesMax,
   * docs/FORMAT.md "Inline bodies"): one file and one fdatasync per delivery. 0 turns it off. A
   * store's own setting (INLINE-BODIES, `mailstore config --inline-bytes-max`) replaces this default.
   * The measured choice, 32 KiB (BENCHMARKS.md, one-sync delivery): it takes 97 % of the bench
   * corpus's messages to 1.03 fdatasync per delivery (4 KiB: 1.70, 8 KiB: 1.39, 16 KiB: 1.10,
   * 64 KiB: 1.02, off: 1.95); a message over it pays a second file's fdatasync and its size
   * change, ~2x an inline delivery. A larger bound buys little more and makes every journal record
   * that carries a body, replay, followers' tail reads and the move into packs at retirement larger.
   * (Sessions 9-15: 16 KiB, 90 % of the corpus at 1.10; session 16 measured 32 KiB: "One-sync delivery".)
   */
  inlineBodyBytesDefault: 32 * 1024,
  /** The threshold a store uses when inline bodies are asked for without a size (the measured choice above). */
  inlineBodyBytesMeasured: 32 * 1024,
  /** The largest inline threshold a store accepts (a segment is read whole; a record carrying a body stays small). */
  inlineBodyBytesSettingMax: 1024 * 1024,
  /** Open with no pack file looks at this many blob entries for one that is not inline (then the packs are missing). */
  packsPresentSampleEntries: 1000,
  /**
   * Moving inline bodies into packs (compact-inline.ts) commits this many body bytes per journal
   * record, each group read into one buffer and at most two groups waiting for their commit: a
   * daemon moves ~100k bodies after each automatic snapshot, and 4 MiB groups, four in flight, with
   * a buffer per body, left its malloc heap ~70 MB larger for good (BENCHMARKS.md, session 23).
   */
  inlineMoveBatchBytes: 1024 * 1024,
  /**
   * Scrub and reconstruct verify inline bodies in groups of about this many body bytes and at most
   * inlineCheckBatchBodies bodies, each group read at once in the order of its records (one pread
   * per run of records at most readGapBytes apart, into one buffer used again by the next group):
   * read one by one, a body cost ~100 µs of CPU. A run reads over the records between the ones it
   * wants, so a group's buffer stays below inlineCheckBatchBytes + inlineCheckBatchBodies ×
   * readGapBytes (5 MiB).
   */
  inlineCheckBatchBytes: 1024 * 1024,
  inlineCheckBatchBodies: 256,
  /**
   * The inline entries scrub gathers (in index order: by hash) before it sorts them by record and
   * reads them (inlineCheckBatchBytes at a time): 48 bytes an entry in typed arrays, so 100k cost
   * ~5 MB, and a store of up to that many inline bodies reads each segment once, front to back.
   */
  inlineCheckEntriesMax: 100_000,
  /**
   * The journal writes this many filler bytes (journal-format.ts FILLER_PATTERN, never zeros) ahead of its last record (within journalSegmentBytesMax),
   * so most commits write into space the file already has and their fdatasync commits no size
   * change (BENCHMARKS.md: sync-one-zeroed vs sync-one). 0 turns it off.
   */
  journalPreallocateBytes: 1024 * 1024,
  /**
   * The least filler a write past a segment's end takes: the filler ahead is the segment's size so
   * far, at least this, at most journalPreallocateBytes, so a segment that holds 100 bytes of
   * records (the one a compaction's `pack.removed` starts, an idle store's) takes 64 KiB on disk,
   * not 1 MiB, at the cost of 4 more size changes while a segment grows to 1 MiB.
   */
  journalPreallocateMinBytes: 64 * 1024,
  /**
   * The free-space reserve (src/store/free-space.ts): a change that adds mail (append, an import
   * batch, a restore into a live store, an XFER's messages) is refused NO_SPACE, before anything
   * is written, when the free space on the store's file system less what it would write falls
   * below the reserve; every other change only below the floor (reserve / freeSpaceFloorDivisor),
   * so users can expunge and compaction can make room. Without it the index (LevelDB, written
   * after each durable commit) met the full disk first, and the store stopped itself (CLOSED).
   * Default: the smaller of freeSpaceReserveBytesMax and freeSpaceReservePercent of the file
   * system's size. 64 MiB holds, after mail stops, LevelDB's memtable flush (4 MiB) and a
   * compaction's new tables beside the old ones, a second of other writers (the cached figure
   * is at most freeSpaceRefreshMs old) and the batches in flight, with room for a good deal of
   * expunging; 5 % (ext4's reserved blocks) keeps a small file system usable (a 4 MiB test tmpfs:
   * 205 KiB, i.e. tiny indexes). StoreOptions.freeSpaceReserveBytes or `mailstore config
   * --free-space-reserve` set another; 0 turns it off (the disk fills up, the store stops, as before).
   */
  freeSpaceReserveBytesMax: 64 * 1024 * 1024,
  freeSpaceReservePercent: 5,
  /**
   * On a file system with a fixed number of inodes (ext4; btrfs makes them as needed), mail is also
   * refused while fewer than the smaller of this and freeSpaceReservePercent of them are free, and
   * everything else below reserve / freeSpaceFloorDivisor. A store takes few (a pack, a journal
   * segment, LevelDB's next tables), but LevelDB's compaction writes its new tables before it
   * removes the old ones, and an open creates a new MANIFEST and log in index/ and lock/: out of
   * inodes with bytes free, the index write failed and the store stopped (CLOSED), and reopening
   * failed NO_SPACE (measured on ext4 made with -N 64). Off when the byte reserve is 0.
   */
  freeSpaceReserveInodesMax: 1024,
  /** Metadata changes (flags, expunge, mailbox delete, copies) and maintenance go on down to reserve / this. */
  freeSpaceFloorDivisor: 8,
  /**
   * The reserve's free-space figure is statfs'd at most this often while changes are made (an
   * unref'd timer, never on the commit path), and lowered by every admitted change's bytes in
   * between; a refused change statfs's again at once, so room that was freed is seen then, and so
   * does the first change after a quiet spell this long (no timer runs while the store is idle).
   */
  freeSpaceRefreshMs: 1000,
  /** Bytes a message costs beyond its body, for the reserve's figure (its journal op and index keys). */
  freeSpaceMessageOverheadBytes: 256,
  /** Open reads this much of the oldest journal segment to see whether it starts with a checkpoint. */
  journalFirstRecordReadBytes: 64 * 1024,
  /**
   * Open's tail check reads the newest segment through one reused window of this size, and reads
   * the payloads recovery decodes again in pieces of at most this size (journal/tail-scan.ts): the
   * segment read whole into fresh memory cost each open a page fault per 4 KiB of it.
   */
  journalTailWindowBytes: 256 * 1024,
  /**
   * Index snapshots (snapshots/): verified generations kept; the journal is retired only below the
   * oldest of them, and not at all while fewer than this many verify (so a damaged newest snapshot
   * always has the one before it, or the whole journal, to fall back to).
   */
  snapshotsKept: 2,
  /**
   * Damaged snapshots that pruning moves to quarantine/ (older than the kept ones, no longer needed
   * for a rebuild): at most this many `snapshot-*` files are kept there as evidence; pruning deletes
   * any further one (a disk that damages every snapshot would otherwise fill quarantine/, which is
   * never emptied automatically, with a copy of the index per snapshot).
   */
  snapshotsQuarantinedMax: 4,
  /** A running store (StoreOptions.autoSnapshot) snapshots once the journal grew by this many records... */
  snapshotEveryRecords: 100_000,
  /** ...or by this many bytes since the last snapshot. */
  snapshotEveryBytes: 256 * 1024 * 1024,
  /**
   * ...and once the last automatic snapshot ended this many times its own duration ago: a store
   * spends at most about a quarter of its time in automatic snapshots, whatever its size. A daemon
   * taking LMTP mail into a 1M-message store ran them back to back (each ~54 s: BENCHMARKS.md,
   * session 22); the journal tail a rebuild replays grows by what came in meanwhile.
   */
  snapshotAutoPauseFactor: 3,
  /**
   * An automatic snapshot that failed (a full disk, a directory that lost its write bit) is tried
   * again no sooner than this after it, doubling with each failure in a row up to
   * snapshotAutoRetryMsMax: a failure that comes in milliseconds was tried again at the next commit,
   * ~60 times a second under steady mail (a warning logged each time).
   */
  snapshotAutoRetryMs: 1000,
  snapshotAutoRetryMsMax: 15 * 60 * 1000,
  /** A snapshot is written in pieces of about this size. */
  snapshotWriteChunkBytes: 1024 * 1024,
  /**
   * A format 2 snapshot record (index entries) holds up to this many bytes (one entry may pass it
   * alone): what a reader checks and hands on at once, and a writer holds. A rebuild hands LevelDB
   * a batch at record ends (snapshotLoadBatchKeys), so this also bounds how much of the load waits
   * for LevelDB's last batch.
   */
  snapshotRecordBytes: 256 * 1024,
  /**
   * A snapshot read that keeps no views (verify, load) reads it through one reused buffer of this
   * size (bigger for a bigger record). Not 4 MiB: a fresh buffer's first touch is a page fault a
   * page, ~13 ms for 4 MiB on the bench VM against 0.35 ms to copy the same 4 MiB into one already
   * touched; a record that straddles two chunks is read again, which costs far less.
   */
  snapshotReadChunkBytes: 512 * 1024,
  /** Index entries read at a time (one LevelDB round trip) while a snapshot is written. */
  snapshotReadEntries: 1000,
  /** Change-log consumers: records handed to a handler at once. */
  consumerBatchRecords: 1000,
  /** An idle consumer waits this long at first, doubling up to consumerIdleMaxMs (a commit wakes it at once). */
  consumerIdleMinMs: 50,
  consumerIdleMaxMs: 5000,
  /** A consumer this many records behind is reported as behind (stats, consumers); it is never skipped. */
  consumerLagRecordsWarn: 1_000_000,
  /**
   * Object-storage tier: remote packs are read in blocks of this size, cached in memory up to
   * objectCacheBytes (LRU) for single reads; a pass over a pack (scrub, readMessages' runs) is not
   * cached. 16 MiB: the cache only serves messages read one by one (a client reading in order hits
   * the block just fetched), and it stays full for the rest of a process's life; at 32 MiB the bench
   * step tier's reads and scrubs peaked at 243-261 MiB, over the 256 MB (244 MiB) RSS goal.
   */
  objectCacheBlockBytes: 1024 * 1024,
  objectCacheBytes: 16 * 1024 * 1024,
  /**
   * With an object store a pack is rotated at this size (not packBytesMax), so the one open pack
   * stays a small share of a store whose sealed packs moved, and a move is one small upload.
   */
  tierPackBytesMax: 8 * 1024 * 1024,
  /**
   * The default move policy (tier-policy.ts): without --local-bytes-max, local packs (the open one
   * included) are kept to this share of all pack bytes, newest kept: 0.10 plus at most one open
   * pack keeps the local share at or under 0.15 at steady state (docs/OBJECT-STORAGE.md).
   */
  tierLocalShareDefault: 0.1,
  /** ...and a sealed pack not written for this long moves even within the budget (cold by age). */
  tierMoveAfterMs: 7 * 24 * 60 * 60 * 1000,
  /** The background mover (StoreOptions.autoTier) looks this often, backing off up to tierBackoffMsMax when idle. */
  tierIntervalMs: 60 * 1000,
  tierBackoffMsMax: 15 * 60 * 1000,
  /** A moved pack's local file: readers still inside get this long before their descriptor is closed. */
  tierReaderWaitMs: 30_000,
  /** Uploads bigger than this go in parts of this size (multipart). */
  objectPartBytes: 64 * 1024 * 1024,
  /** A request to the object store that has not answered, or moved a byte, in this long fails IO. */
  objectRequestTimeoutMs: 30_000,
  /**
   * A listing of more keys than this is refused (IO): a store's packs or a backup repository's
   * files (16 MiB data files: 10M is 160 TB) are far fewer; an endpoint that lists without end is not.
   */
  objectListKeysMax: 10_000_000,
  /** A journal record payload larger than this is damage, not data. */
  journalRecordBytesMax: 64 * 1024 * 1024,
  /** Group commit: most mutations in one batch. */
  batchMutationsMax: 4096,
  /**
   * The writer prepares a chained batch (an import's next one) while the batch before it syncs,
   * instead of after (Writer, "pipelined"); false: one batch after the other, as before session 20.
   */
  writerPipelined: true,
  /**
   * Group commit across round trips: with at least this many writers in flight, the writer waits
   * up to commitGatherMs for those just answered to queue again before it takes a smaller batch.
   * Off (Infinity), like PostgreSQL's commit_delay 0: measured in the 2026-12-02 full run, 64
   * in-process writers fell from 5.20x to 3.90x one writer with it at 8 (writers preparing 1 MB
   * messages came back later than 1 ms and every batch waited), and 64 daemon client processes
   * gained nothing (29.9 appends per commit with it, ~28 without).
   */
  commitGatherWritersMin: Number.POSITIVE_INFINITY,
  commitGatherMs: 1,
  /** Group commit: most new blob bytes in one batch (one huge message always fits alone). */
  batchBlobBytesMax: 64 * 1024 * 1024,
  /**
   * An appendBatch of at least this many messages looks their blob entries up in one read on
   * LevelDB's thread pool instead of one synchronous read each on the JS thread, started when it
   * is called (IndexDb.readAhead: while the writer still commits the batch before it); fewer, as a
   * delivery's one, read in line, where the thread-pool round trip (~60 µs) would cost more than
   * the reads.
   */
  appendPrefetchMessagesMin: 8,
  /**
   * A public caller's message of at least this many bytes is copied into recycled memory
   * (src/store/copy-pool.ts), given back when its append settles; smaller ones are copied into
   * fresh memory (Node's slab takes them up to 4 KiB, and a 16 KiB page fault or two is cheap).
   */
  appendCopyRecycleBytesMin: 64 * 1024,
  /** ...and at most this much free recycled memory is kept (messages above it are copied fresh). */
  appendCopyPoolBytesMax: 16 * 1024 * 1024,
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
  /**
   * An mbox line starting `From ` longer than this (without its newline) is content, not a From_
   * line: the reader holds a From_ line whole until its newline (a damaged file can have none for
   * hundreds of MB), and one the writer makes (`From ` + a sender of envelopeFromBytesMax + a
   * date) is ~300 bytes.
   */
  mboxFromLineBytesMax: 4096,
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
  /** A probe killed or past its time: a child node without LevelDB is tried (can any run here?) for at most this long. */
  indexProbeControlTimeoutMs: 10_000,
  /** Expunges of a mailbox being deleted are journalled in chunks of this many UIDs (an apply: one turn of the event loop, as uidChangePartMessages). */
  deleteChunkMessages: 2_000,
  /**
   * ...and a record of a delete looks at, or ends, at most this many mailboxes (a user of 50k
   * empty folders: 50 records, each holding the writer for a few milliseconds).
   */
  deleteChunkMailboxes: 1000,
  /** Retention (expunge --before) journals its expunges in records of at most this many UIDs. */
  retentionChunkMessages: 10_000,
  /**
   * `mailstore expunge` and `flags` change a UID set in calls (records) of at most this many UIDs:
   * `expunge INBOX 1:*` over 1M messages as one call held the whole change in memory at once
   * (1.7 GB RSS, 91 s; `flags 1:* --add`: 1.9 GB, 120 s), in the daemon when it went through one.
   */
  uidSetChunkMessages: 10_000,
  /**
   * Store.setFlags and expunge commit a longer list in parts of this many (prepare.ts inUidParts),
   * so an IMAP server's STORE 1:* does not hold the event loop for the whole change. Measured
   * through the daemon (200k-message store, load ~11 on 2 cores): parts of 10,000 still stalled it
   * 2.7 s (flags) and 3.3 s (expunge); of 2,000, with a turn of the event loop between parts,
   * 0.40 s and 0.45 s (load ~7).
   */
  uidChangePartMessages: 2_000,
  /** A CLI listing goes to stdout in pieces of about this many characters (stdout-pieces.ts). */
  stdoutPieceBytes: 64 * 1024,
  /** search: most bytes of a message's header section parsed for --header/--subject/--from. */
  searchHeaderBytesMax: 256 * 1024,
  /**
   * Replay and rebuild write a LevelDB batch once this many keys are pending. Two batches are alive
   * at once (one landing while the next is applied), as decoded values, a map of their keys and
   * LevelDB's copy; what outlives a scavenge is promoted and left to the old space. 20000 keys held
   * ~38 MB more anonymous memory than 4096 in a whole-journal rebuild (100k appends, 90 % expunged:
   * peak RssAnon 180 -> 142 MB, 5 pairs) for no measured gain in CPU time; at 1M, 2048 kept the
   * rebuild at 235 MB peak RSS where 4096 reached 230-258 MB (BENCHMARKS.md, session 12).
   */
  replayBatchKeys: 2048,
  /**
   * A rebuild from a snapshot hands LevelDB a batch of about this many entries (after each
   * snapshot record that reaches it): small enough that LevelDB's thread writes one while the next
   * is read and checked, so little of the load waits on the last batch.
   */
  snapshotLoadBatchKeys: 4096,
  /** A snapshot entry's key or value up to this long reaches a rebuild's load in an array kept for its length (EntryScratch: ≤ 128 KiB each). */
  snapshotScratchBytesMax: 512,
  /** Converting an index of format 1 (src/store/index-upgrade.ts) writes a LevelDB batch of this many re-framed values. */
  indexUpgradeBatchKeys: 4096,
  /** A rebuild loads cbor-x's native string decoding (~12 ms) only to replay at least this many journal records. */
  rebuildNativeCborRecordsMin: 64,
  /**
   * Rebuild: the Bloom filter of the keys written so far. 8 MiB keeps false positives under 1 %
   * up to ~5 M keys (about 1.5 M messages); a larger store only pays more LevelDB lookups.
   */
  rebuildKeyFilterBytes: 8 * 1024 * 1024,
  /**
   * ...and, after a snapshot, this much of it for each journal record in the tail (a batch of a few
   * thousand keys at ~10 bits each), besides a bit per snapshot byte (src/store/recovery.ts).
   */
  rebuildKeyFilterRecordBytes: 4 * 1024,
  /**
   * Rebuild: LevelDB's memtable while the new index is loaded (default 4 MiB). Larger, the load
   * writes no level-0 tables and LevelDB compacts nothing meanwhile (the memtable is written once,
   * into one table, before the index is closed to be installed); it is memory while the rebuild
   * runs (up to two memtables): 8 MiB holds a 20k-message store's whole load (~6 MB) and adds at
   * most ~8 MiB over the default to a larger rebuild. 16 MiB took the whole-journal rebuild of 1M
   * appends (90 % expunged) to 250 MB peak RSS against 225 MB with 8 MiB (BENCHMARKS.md, session 12).
   */
  rebuildWriteBufferBytes: 8 * 1024 * 1024,
  /**
   * The index's LevelDB table cache: at most this many files open (LevelDB keeps 10 of them for
   * itself and clips the setting to at least 74: 64 tables). LevelDB maps each table it holds open
   * (mmap, up to 1000 on 64-bit), and the pages a scan touched count in the process's RSS until the
   * table leaves the cache: with classic-level's default of 1000, a pass over a 1M-message index
   * (~90-150 MB) kept all of it resident. 64 tables of indexTableFileBytes bound it to 64 MiB.
   * Cost: a random point read over an index of more tables than that reopens a table now and then
   * (measured at 1M, 92 tables: ~8 -> ~14 us CPU a uniformly random read; BENCHMARKS.md).
   */
  indexOpenFilesMax: 74,
  /**
   * IndexDb.entries reads 1 entry, then 2, 4, ... up to this many per round trip to LevelDB's
   * thread pool (classic-level also ends a batch at 16 KiB of keys and values).
   */
  indexEntriesBatchMax: 256,
  /** reconstruct compares indexes in stretches of this many bytes, reopened between them (index/stretches.ts). */
  indexPassStretchBytes: 16 * 1024 * 1024,
  /** LevelDB's table file size (its default is 2 MiB); with indexOpenFilesMax, the bound on the index's mapped bytes. */
  indexTableFileBytes: 1024 * 1024,
  /** index/LOG plus MANIFEST-* past this, an open store reopens its index (docs/FORMAT.md, "Index files"). */
  indexLogBytesMax: 16 * 1024 * 1024,
  /** How often at most (on a commit) an open store measures them. */
  indexLogCheckMs: 60 * 1000,
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
  /**
   * Index keys of committed batches that may wait merged for LevelDB while the previous index
   * write lands (IndexDb.writeBehind, deferred); beyond it a commit waits for that write.
   */
  indexBehindKeysMax: 65_536,
  /**
   * Mailbox-name and meta entries whose last read IndexDb keeps (IndexDb.getNow): the keys every
   * append reads. A few hundred bytes each at most; past the bound the oldest goes.
   */
  indexReadCacheEntries: 4096,
  /**
   * A committed batch's index write is handed to LevelDB at the latest this long after its commit
   * (IndexDb.writeBehind): one-file commits (inline deliveries) flushed in-thread, or made by a
   * writer that is alone, do not start it themselves, so that the deliveries of some
   * milliseconds share one LevelDB write and one thread-pool wake-up. 50 (was 5): a hand-over
   * costs ~250k instructions besides its keys, and at 5 ms a lone writer made 700-800 of them in
   * 3,000 deliveries on a busy machine (docs/FORMAT.md "Journal commit cost", session 40).
   */
  indexBehindMs: 50,
  /**
   * ...or at once once it holds this many keys (it goes to LevelDB as soon as the batch before it
   * landed): a lone writer's big commits (expunges, compaction's relocations) are not held back
   * for indexBehindMs, whatever it is. indexBehindKeysMax still bounds what waits merged.
   */
  indexBehindHandOverKeys: 4096,
  /**
   * A lone writer's commit with only journal records to make durable (an inline delivery) may be
   * written and fdatasynced in the calling thread (FileHandle.writevDurable) when its payloads
   * total at most this; whether it is, the writer decides by measuring both ways as it goes
   * (src/store/flush-choice.ts). 0: always through the thread pool.
   */
  journalInThreadFlushBytesMax: 64 * 1024,
  /** Buffers handed to one writev call (IOV_MAX is 1024 on Linux). */
  writevPartsMax: 512,
  /** `*` in a UID set: how far below uidNext to look for the largest UID before scanning the whole mailbox. */
  largestUidProbeUids: 1024,
  /**
   * readMessages: message records read from the index in one round trip. With the index scan a
   * batch ahead of the blob lookups, 128 a batch kept the reading thread busiest on a cold
   * SpamAssassin pass (loaded machine, alternating runs: 317 against 411 ms, medians of 16, faster
   * in 14, and 4 % less reading-thread CPU than 256 without the scan ahead). Warm, as the bench
   * reads (session 26, quiet, 10 alternating runs each): 128 a batch 0.105 s, 192 0.090, 256
   * 0.092, 320 0.096 (the reading thread waited ~25 ms of a pass for the index's thread-pool round
   * trips: half as many now); the 20k corpus's 30 KB messages alike (0.387 against 0.383 s).
   */
  readBatchMessages: 256,
  /**
   * ...and at most about this many bytes of them (LevelDB's own default, 16 KiB, ended a batch at
   * ~130 records of SpamAssassin's: twice the round trips to the thread pool, issue 16).
   */
  readBatchIndexBytes: 256 * 1024,
  /**
   * changesSinceParts: vanished uids, or vanished ranges, in one part (its changed messages go
   * readBatchMessages a part). The daemon sends each such part as one frame: 10,000 ranges are
   * ~100 kB of CBOR, far below frameBytesMax.
   */
  changesSincePartUids: 10_000,
  /**
   * readMessages: batches of records located (index, then blob lookups) ahead of the one being read.
   * One keeps up: a cold SpamAssassin pass (loaded machine, alternating runs) took 6-8 % less CPU
   * with 1 than with 2 (a third less surviving each scavenge) and no longer (wall 279 vs 304 ms,
   * 379 vs 376 ms, medians of 12; 314 vs 378 ms, of 15); the 611 MB corpus 3 % less of both.
   */
  readAheadBatches: 1,
  /**
   * readMessages: body bytes read (in pack order) as one group; one bigger message goes alone. The
   * next group is read while this one is yielded, so at most two are held (8 MiB, as one group of
   * 8 MiB was before the overlap).
   */
  readBatchBytes: 4 * 1024 * 1024,
  /** readMessages: most body bytes, and messages, read between two turns of the event loop. */
  readTurnBytes: 1024 * 1024,
  readTurnMessages: 128,
  /**
   * readMessages with lendBodies: a group's body bytes, and a hash job's (readBatchBytes and
   * readPoolBatchBytes without lending). Its buffers are reused, so a lending reader holds two or
   * three whatever their size; with 8 MiB a group is an index batch of the bench's 20k corpus, and
   * the worker gets half as many jobs: 0.311 -> 0.302 s and 0.313 -> 0.296 s (medians of 7
   * alternating runs each, warm; 16 MiB: 0.301; groups of 8 MiB with jobs of 4: 0.325; 2 MiB:
   * 0.332); SpamAssassin (no worker) alike, 0.0870 against 0.0866 s.
   */
  readLentBatchBytes: 8 * 1024 * 1024,
  /**
   * ...but this many when hashed in the reading thread (no worker): small buffers, reused while
   * still cached (8 MiB: 16 MiB of fresh pages a pass; SpamAssassin's reading thread 154 -> 124 ms).
   */
  readLentInThreadBatchBytes: 512 * 1024,
  /**
   * readMessages with lendBodies: a group's buffer (its readLentBatchBytes of bodies, their headers,
   * and the gaps its runs read over: limits.readGapBytes), shared memory a hash worker reads in
   * place. A buffer a run before (session 27): the bench's 20k pass made 20-190 MiB of new ones
   * (14,500 page faults in its first pass, now 7,000-10,000), and the first one handed to the worker
   * detached it, which threw away the optimised code of a dozen read-path functions mid-pass.
   * 0.348 -> 0.332 s (10 alternating pairs, faster in 9; groups of 4 MiB in 5 MiB buffers then).
   */
  readLentBytes: 9 * 1024 * 1024,
  /**
   * ...and free ones kept to read into again. A buffer a run (before session 27): at 16 MiB the
   * bench corpus (162 records over 1 MiB) still made 185 new buffers (228 MiB) in a pass; at 32 MiB 29 (36 MiB),
   * and its peak RSS went down (133 -> 127 MB).
   */
  readLentBytesKept: 32 * 1024 * 1024,
  /**
   * readMessages verifies bodies on a worker thread (StoreOptions.readHashThreads) in a mailbox of
   * at least this many bytes (as scrub: limits.scrubPoolBytesMin): a worker costs ~50 ms of a core
   * to start, and the reading thread hashes itself until the worker is up. The pool is the store's
   * shared one (hashPoolThreadsMax, hashPoolIdleMs). Measured (loaded machine): SpamAssassin's 32 MB of 5.4 KB messages
   * read slower with the worker (hashing is ~15 % of a small message's cost, the start is not
   * paid back); 20,000 messages of 30 KB (611 MB) took ~15 % less of the reading thread's CPU.
   */
  readPoolMailboxBytesMin: 64 * 1024 * 1024,
  /**
   * ...the runs of one pack going to it together, up to this many body bytes a job: a job a run
   * (~1,900 of ~310 KB in a pass over the bench's 20k messages) cost the reading thread more in
   * round trips than the worker saved it, and it read at about the speed of hashing everything
   * itself. One job per pack of a group: 0.44 -> 0.37 s (6 alternating pairs, 2 cores); jobs of at
   * most 1 MiB: 0.41 s, 2 MiB: 0.39 s. The reading thread only preads, and checks the headers.
   */
  readPoolBatchBytes: 4 * 1024 * 1024,
  /** ...and only runs of at least this many bytes go to it: a smaller one hashes faster than a round trip. */
  readPoolRunBytesMin: 64 * 1024,
  /**
   * ...with at most this many jobs of one read on the workers while the reading thread reads the
   * next ones; a run beyond them is hashed in the reading thread, so both threads hash (3 or 4:
   * no faster, 1: slower).
   */
  readRunsHashing: 2,
  /**
   * The store's one hash pool (src/hash/shared-pool.ts), shared by readMessages and scrub: at most
   * this many worker threads (each an isolate of ~10 MB and a malloc arena, resident while it lives)...
   */
  hashPoolThreadsMax: 8,
  /** ...closed after this long without a lease (a worker starts in ~50 ms; an idle one only costs memory). */
  hashPoolIdleMs: 10_000,
  /** A hash worker's young generation (V8 resourceLimits): measured, the default grew ~3 MiB more over a 600 MB pass. */
  hashWorkerYoungGenerationMb: 2,
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
  /** A scrub report lists this many informational findings of a kind, and counts the rest (findings.ts ListingCap). */
  scrubListedPerKindMax: 1000,
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
  /**
   * ...and, unless told how many threads, only once a chunk's records average this many bytes: at
   * 1M messages of ~2.7 KB (one worker, 2 cores) the worker saved no time, cost CPU in the records'
   * round trip, and its isolate and arena held ~15-25 MiB of the pass's peak RSS (issue 16).
   */
  scanPoolRecordBytesMin: 16 * 1024,
  /** Chunks read ahead while workers hash earlier ones (each holds scanChunkBytes). */
  scanChunksInFlight: 4,
  /** A scan hashes a chunk in its own thread when the pool's workers already hold this many chunks each. */
  scanChunksPerWorker: 2,
  /** The same for a worker that reads its chunks from the pack itself (FileHandle.fd): it parses one only after hashing the one before. */
  scanReadChunksPerWorker: 1,
  /**
   * ...which, the pool's only worker, goes on to this many chunks past the one asked for while it
   * waits (HashPool.scanChunk's `ahead`): on 2 cores it hashed ~30 % of a 20k scrub's pass, idle
   * while the reading thread ran the index pass and was late handing it the next chunk (issue 16).
   */
  scanChunksAhead: 16,
  /**
   * Scrub's own pack pass, unthrottled, lets it go this far past (1 GiB of pack at 4 MiB chunks):
   * 16 kept the worker waiting on the reading thread's index pass, which asks for the next chunk
   * only between its own batches, and the pack pass ran on 90-270 ms past the index pass's end
   * (20k bench store, 2 cores, session 19). What the worker holds of a chunk it read ahead is its
   * records' ranges, hashes and digests (its bytes are read into one buffer again and again), so
   * memory is bounded by scanRecordsAhead, not by this.
   */
  scrubChunksAhead: 256,
  /** A worker reading ahead stops once the chunks it holds have this many records (~100 bytes each: ~6 MiB). */
  scanRecordsAhead: 65_536,
  /**
   * The CLI waits this long for a store another process holds before LOCKED (--wait, --no-wait),
   * as mail servers' admin tools do; the library waits only when asked (StoreOptions.lockWaitMs).
   */
  cliLockWaitSeconds: 30,
  /** A waiting opener retries the kernel lock this often (node has no blocking fcntl). */
  lockRetryMs: 100,
  /**
   * A CLI command waiting for the lock while the daemon's socket is there asks the daemon again
   * this often: a daemon with every connection taken closes new ones at once, and waiting for the
   * lock it holds could only end LOCKED.
   */
  cliDaemonRetryMs: 1000,
  /** The holder writes its pid just after taking the lock: a LOCKED message re-reads LOCK this long for it. */
  lockHolderReadMs: 300,
  /** A LOCKED message names the holder's command line ("process 4711 (mailstore compact)"), cut to this many characters. */
  lockHolderCommandCharsMax: 120,
  /** The CLI tells a person at a terminal that it is waiting for the lock once it has waited this long. */
  lockNoticeMs: 1000,
  /**
   * A file-system call that has not returned in this long is reported (src/fs/stall-watch.ts: the
   * daemon's `io-stalled` line, a CLI's stderr line): a healthy disk answers in milliseconds, a
   * dying one retries for ~30 s a request, a hung NFS or FUSE mount never. MAILSTORE_STALL_REPORT_SECONDS overrides it.
   */
  stallReportMs: 10_000,
  /** ...looked for this often (a few /proc reads a thread)... */
  stallCheckMs: 1000,
  /** ...and reported again this often while it lasts, with its time so far. */
  stallRepeatMs: 60_000,
  /**
   * A CLI command starts the watch once it has run this long (a worker thread's start costs more
   * CPU than a whole append through the daemon); its first look at the store is made in the
   * thread pool, so a store already hung keeps the main thread free to start it.
   */
  cliStallWatchDelayMs: 1000,
  /** Most hash worker threads scrub --threads accepts. */
  hashThreadsMax: 64,
  /** A progress line on a terminal is redrawn at most this often. */
  progressRedrawMs: 200,
  /** A Maildir's dovecot-keywords file holds at most 26 short lines; anything bigger is not one. */
  maildirKeywordsFileBytesMax: 64 * 1024,
  // ---- replication (src/replication) ----
  /** One frame between nodes (a pack chunk or a group of records); a bigger one is refused as hostile. */
  replicationFrameBytesMax: 80 * 1024 * 1024,
  /**
   * A node-to-node message, and each replicated journal record, may decode to at most this many heap
   * bytes per CBOR byte, with no tag mailstore does not write (index/cbor-bounds.ts), else INVALID:
   * as daemonLimits.frameDecodedBytesPerByteMax (journal ops take ~30 at most).
   */
  replicationDecodedBytesPerByteMax: 48,
  /** Pack bytes sent in one frame. */
  replicationPackChunkBytes: 4 * 1024 * 1024,
  /**
   * The highest modseq an XFER source may bring (its target's modseqs are raised past it): above
   * it the target would soon have no modseq left below 2^53 (JavaScript's exact integers) and every
   * change of its would stop it. Far above any real one: a modseq is a journal seq (and offset).
   */
  xferModseqMax: 2 ** 52,
  /** The newest journal records kept in memory for replicas that keep up (Journal.recentAfter). */
  journalRecentBytesMax: 8 * 1024 * 1024,
  /**
   * ...and only while a replica has asked for them (Journal.recentAfter) within this long: a store
   * nobody replicates keeps none (the daemon's RSS grew by them over its first ~30k deliveries).
   */
  journalRecentIdleMs: 60_000,
  /** Journal records sent to a replica in one round (it commits them as one batch). */
  replicationRecordsPerRound: 2000,
  /** ...and at most this many pack bytes in one round (one bigger message goes alone). */
  replicationRoundBytesMax: 64 * 1024 * 1024,
  /**
   * A batch with more pack bytes than this is not shipped as a tentative round (while the
   * primary's syncs run) but after its commit, as before: the replica writes a tentative round
   * twice (its pending file, then its packs), which pays only for small batches.
   */
  replicationTentativeBytesMax: 4 * 1024 * 1024,
  /**
   * A synchronous replica commits the tentative rounds its primary has committed (packs, journal,
   * index: two fdatasyncs) at most this often, all of them as one batch: each round is already
   * durable in REPLICATION-PENDING, and a commit per round put two more fdatasyncs per delivery
   * on the disk the next round's pending write and the primary's own syncs were waiting for.
   */
  replicaTentativeCommitDelayMs: 20,
  /**
   * A primary tells a synchronous replica that a tentative round committed on the next tentative
   * round (one frame per change instead of two); when no change follows within this time, in a
   * `commit` frame of its own. Only the replica's visible lag waits on it, never an acknowledgement.
   */
  replicationCommitNoticeMs: 5,
  /**
   * REPLICATION-PENDING is preallocated to this size (on a synchronous replica's first tentative
   * round) and emptied once past it, after committing its rounds at once: a delivery that finds it
   * full waits for that commit, so it should be rare (every ~140 deliveries of 28 KB).
   */
  replicaPendingFileBytes: 4 * 1024 * 1024,
  /**
   * A read-only open (the replica's writer may be another process, one started after this open
   * checked LOCK) reports a damaged REPLICATION-PENDING frame only when the file still reads damaged
   * after each of these pauses: a frame being written reads as damage while its write runs
   * (microseconds; longer when dirty-page throttling holds the writer), damage stays.
   */
  replicaPendingRereadMs: [10, 100, 1000],
  /** Received frames queued, unread, before the connection stops reading (TCP then holds the sender back). */
  replicationQueueBytesMax: 64 * 1024 * 1024,
  /** A replica with rounds outstanding that acknowledges nothing for this long is dropped. */
  replicaApplyTimeoutMs: 120_000,
  /** A handshake (TLS and hello) must finish within this. */
  replicationHandshakeMs: 10_000,
  /**
   * Connections the replication listener holds at once (replicas, check, repair and XFER clients,
   * handshakes under way); more are closed at accept. Within daemonLimits.descriptorsSpare.
   */
  replicationConnectionsMax: 64,
  /** A replica reconnects after this, doubling up to replicationRetryMaxMs. */
  replicationRetryMinMs: 100,
  replicationRetryMaxMs: 5_000,
  /** A replica failing for one reason is logged again only this often (repeated-failures.ts). */
  replicationFailureRepeatLogMs: 600_000,
  /** A silent peer is sent a ping after this; one silent for three times as long is dropped. */
  replicationPingMs: 2_000,
  /**
   * promote: the old primary, reached, has this long to answer its fence with the last seq it
   * committed (it first lets the batches already queued commit); no answer: the promoted store
   * gives every mailbox a new uidValidity (docs/REPLICATION.md).
   */
  promoteFenceAnswerMs: 10_000,
  /** promote did not reach the old primary: told again this often until it answers fenced (keepFencing). */
  promoteFenceRetryMs: 5_000,
  /**
   * promote: an old primary reached and fenced that committed more than the replica holds is
   * followed this long for the rest (a switchover under load), so the uidValidity can be kept: by
   * a replica's daemon before it stops replicating, and again by promote itself when still behind.
   */
  promoteCatchUpMs: 60_000,
  /** promote: mailboxes given a new uidValidity per journal record (~60 bytes each). */
  promoteMailboxesPerRecord: 10_000,
  /** A synchronous commit whose replica dropped waits this long for one to confirm, then fails UNAVAILABLE. */
  syncReplicaWaitMs: 5_000,
  /** The primary writes a replica's durable cursor at most this often (acks in between only move it in memory). */
  replicaCursorWriteMs: 1_000,
  /** replica check: a mismatching uid range is split until it holds at most this many messages, which are listed. */
  digestLeafMessages: 64,
  /** Messages sent in one XFER frame... */
  xferMessagesPerFrame: 256,
  /**
   * ...and message bytes (bodies and their metadata): a frame closes before the message that would
   * pass this; one bigger message goes alone (up to replicationFrameBytesMax, else TOO_LARGE).
   * Counted by messages alone, 256 of 320 KiB made a frame the target refused (over 80 MiB).
   */
  xferFrameBytes: 16 * 1024 * 1024,
  /**
   * After an XFER moved a user away, mail for them is refused as temporary (LMTP 451 4.2.1, append
   * --sysexits 75) for this long, so the MTA queues it until its routing names the new host; then
   * permanently (550 5.1.6), once both the wall clock and the process's monotonic clock since it first
   * saw the mark (moved.ts) say so. Five days: Postfix's maximal_queue_lifetime, after which it bounces anyway.
   */
  xferMovedTempfailMs: 5 * 24 * 60 * 60 * 1000,
  /**
   * The store's clock reference (src/store/clock.ts): a change of the boot's wall-clock time by
   * more than this is a step of the wall clock (NTP's slew moves it by at most 0.5 ms a second, and
   * the store looks at least once a minute while it writes), and a clock this far behind the latest
   * time the store has seen, or its creation, is behind. Retention refuses either until the admin
   * trusts the clock; a step smaller than this costs a retention run at most this much.
   */
  clockStepMs: 10 * 60 * 1000,
  /** How often a store that commits looks at the clock and records the latest time it has seen. */
  clockLookEveryMs: 60 * 1000,
  /** The clock's steps kept until the admin trusts the clock (the first and the newest ones). */
  clockStepsKept: 16,
} as const;

/** The daemon (src/daemon) and its client library (src/client): the socket protocol's bounds. */
export const daemonLimits = {
  /**
   * An incremental backup's session through the daemon (daemon/backup-sessions.ts) is closed after
   * this long without a call: a backup that left it open (a failed run in a process that goes on)
   * lets its LevelDB snapshot go. One that was killed lets it go at once, with its connection.
   */
  backupSessionIdleMs: 60_000,
  /** ...and its answers are listed in pieces of at most this many entries (each a frame: frameBytesMax bounds a frame). */
  backupSessionPartEntries: 10_000,
  /** A client before session 39 is sent vanished ranges as uids, at most this many (else UNAVAILABLE). */
  vanishedExpandedUidsMax: 4 * 1024 * 1024,
  /**
   * Largest frame either side accepts (its 4-byte length prefix aside); a bigger one is refused
   * (INVALID) and the connection dropped. Bodies never need one this big: they travel as chunks.
   * Answers that grow with the store (the mailbox list, changesSince) go as listings, an item a frame.
   */
  frameBytesMax: 16 * 1024 * 1024,
  /**
   * A frame's CBOR may decode to at most this many heap bytes per byte, else it is malformed
   * (INVALID, the connection dropped; index/cbor-bounds.ts): what mailstore sends takes a few (bodies,
   * names, small maps), ~30 at most (a journal op's flag change listed to a backup: [uid, []]
   * entries, uids of two bytes); 16 MiB of empty maps decoded to ~1 GB. 48: what a bomb of one-byte
   * empty items takes (56-88) is refused, and what mailstore writes keeps a margin over its
   * densest, since a good record refused here stops a replica or a restore for good.
   */
  frameDecodedBytesPerByteMax: 48,
  /** A body (or any byte string) is sent in chunk frames of at most this many bytes. */
  chunkBytes: 256 * 1024,
  /** Byte strings up to this size travel inside their frame; bigger ones follow as chunk frames. */
  inlineBytesMax: 64 * 1024,
  /** ...and at most this many inline bytes per frame (an appendBatch of many small messages). */
  inlineTotalBytesMax: 1024 * 1024,
  /** A stream (fetchStream) or listing (messages, readMessages) runs at most this many bytes ahead of its reader... */
  streamWindowBytes: 2 * 1024 * 1024,
  /** ...and at most this many items ahead. */
  streamWindowItems: 512,
  /** Most byte-string bytes (message bodies) one call may carry: TOO_LARGE above, the bytes dropped as they come. */
  callBytesMax: 256 * 1024 * 1024,
  /**
   * Arguments one call frame may carry (the most any method or procedure takes is a handful): more is
   * a malformed frame (INVALID, connection dropped); spread into the method, 200k of them threw RangeError.
   */
  callArgumentsMax: 16,
  /** Calls one connection may have in flight (not counting listings waiting for their reader's credit); past it the daemon stops reading that connection. */
  callsPerConnectionMax: 64,
  /**
   * Listings and streams waiting for their reader's credit, over all connections (connection.ts):
   * each holds its generator's state (an index iterator; readMessages up to two read groups,
   * 2 x readBatchBytes; a pack read's buffer) and is counted against no other bound, so a client
   * that starts listings and never credits them could make the daemon hold thousands. One that
   * would wait past this many is ended UNAVAILABLE where it is (the client reads it again later).
   */
  parkedFlowsMax: 512,
  /** Body bytes one connection's calls in flight may hold in the daemon before it stops reading that connection. */
  heldBytesPerConnectionMax: 256 * 1024 * 1024,
  /**
   * Message bytes the whole daemon holds at once (socket calls' bodies and LMTP DATA, body-budget.ts):
   * an eighth of memory, at least messageBytesMax, at most 256 MiB (was up to 1 GiB: 2 GB RSS).
   * Past it a socket call waits for room and LMTP answers 452 4.3.1 (the MTA retries).
   */
  bodyBytesHeldMax: Math.min(256 * 1024 * 1024, Math.max(limits.messageBytesMax, Math.floor(totalmem() / 8))),
  /** Drained after this many bytes went through it, the budget has V8 collect (give-back.ts)... */
  bodyCollectAfterBytes: 32 * 1024 * 1024,
  /** ...this long after it drained. */
  bodyCollectDelayMs: 200,
  /** Connections waiting to be accepted (the kernel caps it at net.core.somaxconn): a burst of clients starting at once. */
  listenBacklog: 4096,
  /**
   * Connections the daemon keeps at once; more are refused (closed at once, logged). Fewer when the
   * process's open-file limit would not leave descriptorsReserved beside them (server.ts): idle
   * connections up to the limit once left LevelDB no descriptor for its next log file, and the
   * store, then the daemon, stopped.
   */
  connectionsMax: 8192,
  /**
   * Descriptors kept from connections for everything else: LevelDB's tables (indexOpenFilesMax),
   * packs (packReadHandlesMax), journal segments (journalReadHandlesMax), LMTP connections
   * (lmtpLimits.connectionsMax, fewer under a low limit, and refusedHeldMax) and this many more (stdio, the event loop, worker threads, the
   * log, the pack and segment being written, LevelDB's log and manifest, replication
   * (limits.replicationConnectionsMax), metrics (metricsConnectionsMax)).
   */
  descriptorsSpare: 128,
  /** ...but the daemon takes at least this many connections, however low the limit. */
  connectionsMin: 16,
  /** Connections the metrics endpoint holds at once (a scraper or two); more are closed at accept. */
  metricsConnectionsMax: 16,
  /**
   * A scrape waits at most this long for a figure read from the store (a consumer's lag: a LevelDB
   * read), then answers with the one read before: with the store's disk hung, such a read never
   * returns, and the scrape hung with it, so the stall the scrape should show showed as a scrape
   * timeout. Prometheus's default scrape timeout is 10 s.
   */
  metricsCollectMs: 2000,
  /** Refused connections are logged at most once this often, with how many (a client connecting in a loop must not fill the disk). */
  refusedLogMs: 1000,
  /** A frame, or a call's byte strings, once begun must progress within this long of reading, else the connection is dropped (a half-sent frame or body holds memory and the body budget); the clock stops while the daemon does not read it (its bounds). */
  frameCompleteMs: 30_000,
  /** SIGTERM: calls in flight get this long to finish before the store is closed under them. */
  shutdownGraceMs: 5_000,
  /** The daemon looks this often that its store is still on the file system it opened (mount-watch.ts). */
  mountCheckMs: 1000,
  /**
   * SIGTERM: the socket file's removal gets this long; past it (its directory on a hung mount) the
   * listener is left open, refusing, until the process exits. libuv removes the file again in the
   * main thread when the listener closes, and on a hung mount that held the daemon's stop, and its
   * store's close, until systemd killed it.
   */
  socketRemoveWaitMs: 2000,
  /**
   * Under systemd (Type=notify): while the store opens, each notice pushes the start timeout this
   * far ahead, sent four times as often, so a stall of the event loop a quarter of it long (a large
   * synchronous step, a full collection) never lets it run out.
   */
  systemdExtendStartMs: 120_000,
  /** A systemd-notify that has not returned in this long is given up (logged): systemd did not take its message. */
  systemdNotifyTimeoutMs: 10_000,
  /**
   * The daemon's log (--log FILE or stderr): an info line less than this long after the last write
   * waits for the end of that interval and goes out with the others of it (a line after a quiet
   * spell, warnings, errors, close and exit write at once): one write per burst instead of one per
   * LMTP delivery, whose write (a thread-pool wake-up for the file, a blocking write to journald's
   * socket for stderr) sat on the path to the 250 (BENCHMARKS.md, "LMTP's tail").
   */
  logFlushMs: 100,
  /** ...or as soon as this many bytes of lines are waiting. */
  logBufferBytesMax: 64 * 1024,
  /**
   * A --log file whose write failed (a full disk) is opened again by the first line at least this
   * long after the failure; the lines in between are dropped and counted (the daemon serves on).
   */
  logReopenMs: 1000,
  /**
   * A --log file that takes no lines (its mount hung: an NFS server gone, a FUSE daemon stopped)
   * is handed at most this many bytes of them; past it lines are dropped and counted, told in a
   * `log-lines-lost` line once it takes them again. The stream held every line in memory before,
   * one a delivery: ~200 bytes each, 200 MB a million deliveries.
   */
  logPendingBytesMax: 4 * 1024 * 1024,
  /** The daemon's stop waits this long for the log file to take its last lines, then exits without them. */
  logCloseWaitMs: 2000,
  /**
   * `mailstore serve` sets V8's heap growing factor to 1 + this/100: the old generation may grow to
   * three times what the last full collection left live before the next one starts. V8's own
   * choice for the daemon's small heap (~10 MB live) started a full collection every ~230 LMTP
   * deliveries at 64 connections, each delivery's buffers counted towards it (~85 µs of main-thread
   * GC a delivery); with 200 half as many, the daemon's peak RSS the same (BENCHMARKS.md "64 LMTP
   * connections (session 18)"). V8 grows small heaps by up to 4 times itself.
   */
  heapGrowingPercent: 200,
  /** The client library: how long a call waits for the daemon to come back (reconnecting) before UNAVAILABLE. */
  clientReconnectWaitMs: 2_000,
  /** ...retrying this often. */
  clientReconnectRetryMs: 100,
  /** The CLI: a connection attempt to a daemon's socket gives up after this long (then opens the store itself). */
  cliConnectTimeoutMs: 2_000,
} as const;

export const importLimits = {
  /**
   * An import batch (one appendBatch, one journal record, one fsync pair) holds at most this many
   * messages... A batch's messages, their ops and index values live until it commits, and the
   * last batch's commit is the import's tail after the parse ends. With 500 small messages a
   * batch (SpamAssassin, ~5 KB each) the import took 1.22x the time and 1.09x the CPU of 250, and
   * 15 MB more peak RSS, for the same instructions (callgrind): the difference is memory traffic
   * and the tail (session 18, docs/bench/import-2026-12-03-s18.md). Messages over batchBytesMax /
   * 250 (~16.4 KiB) fill a batch by bytes first, so this changes nothing for them: the 20k bench
   * corpus makes the same 159 batches with 250 as with 500 (test/import/batch-size.test.ts).
   */
  batchMessagesMax: 250,
  /**
   * ...and at most this many message bytes (one bigger message goes alone). Each byte in flight
   * costs ~3 in RSS (the batch's buffers outlive young collections, and V8 frees external memory
   * only every ~64 MiB): 8 -> 4 MiB took the 20k import's peak RSS from ~200 to ~168 MiB in the
   * same time (session 8, loaded machine, docs/OBJECT-STORAGE.md "Memory").
   */
  batchBytesMax: 4 * 1024 * 1024,
  /** Batches submitted and not yet committed while the next is read (each holds its bytes). */
  batchesInFlight: 2,
  /**
   * An import lets the event loop turn after reading this many message bytes while a batch is in
   * flight: its reads are synchronous, so without a turn the writer would start a submitted batch
   * only when the importer waits for room in flight, and disk and parser would take turns (81
   * commits of two batches each on the 20k corpus, the disk idle while the next two were read).
   * With a turn per MiB the commit starts at once, and its completion is seen within ~1 MiB of
   * parsing, so the next batch's commit starts soon after.
   */
  yieldBytes: 1024 * 1024,
  /**
   * An import reads an mbox in chunks of this size: small enough that a chunk is still in the
   * CPU's cache when the parser scans it after the read (SpamAssassin's 32 MB mbox: read and scan
   * ~4x faster in 256 KiB chunks than in 2 MiB ones on the bench machine). A message that does
   * not fit the rest of a chunk is read again from its start into the next one
   * (MboxParser.rewind), into one of mboxWholeChunkBytes when it fills a chunk or already had a
   * quarter of one.
   */
  mboxChunkBytes: 256 * 1024,
  /**
   * The read that holds a large message whole, so each message up to this size is one view of one
   * chunk, never a copy: 2 MiB holds whole the 0.25-1.4 MB messages that carry most of the 20k
   * bench corpus's bytes (with 1 MiB chunks, 160 ms of copying remained).
   */
  mboxWholeChunkBytes: 2 * 1024 * 1024,
  /**
   * Bytes of mbox read chunks an import keeps to read into again once the messages viewing them
   * committed (src/formats/mbox.ts, ChunkRing). In flight are ~3 batches of batchBytesMax (~12
   * MiB); past this the oldest chunks are left to the garbage collector.
   */
  readChunkBytesKept: 24 * 1024 * 1024,
  /** Unreadable files listed one by one in a summary; the rest are counted. */
  skippedListedMax: 100,
  /**
   * Entries skipped before the resume point that the next run retries, kept in the import cursor
   * (each costs its name in every batch's journal record); an import that skips more stops.
   */
  retryEntriesMax: 1000,
  /** Folders nested deeper than this below an import source (Maildir or .eml tree) are reported, not walked. */
  folderDepthMax: 32,
  /** public-inbox: message blobs asked of `git cat-file --batch` before the first is taken (keeps git busy). */
  publicInboxBlobsInFlight: 16,
  /**
   * public-inbox: git cat-file dies on a blob it cannot inflate (a damaged pack): that blob is
   * skipped and a new process reads on. Dying this many times in a row, no blob read in between, is a repository
   * that cannot be read at all: the import stops (INVALID).
   */
  publicInboxReadRestartsMax: 16,
  /** public-inbox: messages an archive may have removed (their blob ids are held while reading). */
  publicInboxRemovedMax: 1_000_000,
} as const;

export const benchLimits = {
  /** `mailstore bench` corpus preparation: a resume checkpoint after this many messages... */
  prepareCheckpointMessages: 5000,
  /** ...or this many message bytes, whichever comes first. */
  prepareCheckpointBytes: 256 * 1024 * 1024,
  /** Distinct messages whose hash is kept to count duplicates (about 100 bytes each); past it, counted among these only. */
  duplicatesTrackedMax: 2_000_000,
  /** The crash-recovery measurement kills an import half way: below this many messages it ends too soon to be killed. */
  recoverMessagesMin: 400,
  /** ...and on a huge corpus it is killed after this many (the import of half of 2 TB would take hours). */
  recoverKillAfterMax: 50_000,
} as const;

/** LMTP delivery (src/daemon/lmtp.ts). The message size limit is the store's (messageBytesMax). */
export const lmtpLimits = {
  /** Connections served at once; more are answered 421 by smtp-server (an MTA opens a few per destination). Fewer under a low open-file limit (server.ts lmtpConnectionsAllowed)... */
  connectionsMax: 256,
  /** ...but at least this many. */
  connectionsMin: 16,
  /** Connections answered 421 (too many, or idle) whose client has not closed yet; more are closed at accept without a word... */
  refusedHeldMax: 16,
  /** ...and each is closed this long after its 421 (an MTA closes at once; the reply has gone out by then). */
  refusedCloseMs: 2000,
  /** Recipients in one transaction; more get 452 4.5.3 and the MTA sends them in another (RFC 5321 asks for at least 100). */
  recipientsMax: 1000,
  /** A connection that sends nothing for this long is closed (RFC 5321 4.5.3.2.7: the server waits at least 5 minutes). */
  idleMs: 5 * 60 * 1000,
  /** After close(), in-flight transactions get this long to finish before connections are cut. */
  closeGraceMs: 10_000,
  /**
   * RCPT: a mailbox found to exist is taken as existing for this long without asking the index
   * again (two LevelDB reads per recipient otherwise: the store's mailbox cache is cleared at
   * every commit). Safe: a mailbox deleted meanwhile fails the append, answered 550 5.1.1 after DATA.
   */
  recipientCacheMs: 1000,
  /** Mailboxes in that cache (past this it starts over). */
  recipientCacheEntries: 4096,
  /** DATA past this many bytes is copied into one buffer as it comes, grown this much at a time (growing-body.ts). */
  dataPiecesBytesMax: 1024 * 1024,
} as const;

/** Change events (src/events/). */
export const eventLimits = {
  /** Messages whose flags an event reader remembers, to tell FlagsSet from FlagsClear (the oldest are forgotten). */
  flagStatesMax: 100_000,
  /** Events in one webhook POST; the consumer cursor moves once per POST. */
  webhookBatchEvents: 100,
  /** A webhook POST that has not answered after this long is a failed attempt. */
  webhookTimeoutMs: 10_000,
  /** A receiver's answer body is read (so the connection is reused) up to this many bytes, then dropped with its connection. */
  webhookAnswerBytesMax: 64 * 1024,
  /** Failed attempts of one POST are retried this many times (default), waiting webhookBackoffMs, doubling. */
  webhookRetries: 5,
  webhookBackoffMs: 1000,
  /** Longest wait between retries, however often it doubled. */
  webhookBackoffMaxMs: 60_000,
  /** The daemon's webhook starts again this long after it gave up (the receiver down past its retries). */
  webhookRestartMs: 60_000,
  /**
   * A follower reads the journal at most this often: each read parses the tail segment (up to
   * journalSegmentBytesMax) again, and a busy daemon commits hundreds of batches a second.
   */
  followReadIntervalMinMs: 100,
  /** A follower (events --follow, a webhook) looks for new records this often when no commit wakes it. */
  followPollMs: 500,
  /** `events --follow` tries a look the daemon's restart cut short again after this, doubling up to followRetryMaxMs (as a replica reconnects)... */
  followRetryMinMs: 100,
  followRetryMaxMs: 5_000,
  /** ...until the daemon has been away this long (a restart that recovers a big journal takes a while): then it exits UNAVAILABLE. */
  followReconnectMs: 300_000,
  /**
   * Followers through a daemon whose names and flags it keeps between their looks (each up to
   * flagStatesMax messages); past this the least recently looking one starts again with nothing
   * seen (its next flag change of a message is a FlagsSet allFlags). 8, not 64: each keeps up to
   * flagStatesMax flag states at ~150 B (a hex:uid key, the flags, the Map entry), ~15 MB a busy
   * follower, so 64 could hold ~1 GB of a daemon bounded at 256 MB; 8 hold at most ~120 MB.
   */
  followSessionsMax: 8,
} as const;

/** Backup repositories (src/backup/, docs/BACKUP.md). */
export const backupLimits = {
  /** Repositories a store remembers backing up into (BACKUPS, src/store/backup-records.ts); the oldest go first. */
  recordsMax: 32,
  /** Root's record beside no writer waits this long for the writer's lock (backup-records.ts). */
  recordLockWaitMs: 10_000,
  /** A data file is closed once its records reach this size (one bigger blob goes alone). */
  packBytesTarget: 16 * 1024 * 1024,
  /** A backup sends blobs to its compression workers in batches of at most this many... */
  compressBatchBlobs: 64,
  /** ...or this many bytes (the batch closes at the blob that reaches it)... */
  compressBatchBytes: 2 * 1024 * 1024,
  /** ...and keeps this many batches read or compressing at once (each holds its bytes twice). */
  batchesInFlight: 4,
  /** Compression worker threads of a backup: at most this many, and no more than the cores... */
  compressThreadsMax: 4,
  /**
   * ...and one per this many bytes to copy (compress-pool.ts compressThreadsFor): zstd level 1
   * compresses ~450 MB/s of a core here, so one worker keeps up with the main thread on a copy of
   * this size, and a second one's start (~25-35 ms of a core) is not paid back.
   */
  compressBytesPerThread: 64 * 1024 * 1024,
  /** zlib level for metadata files and the blobs of version-1 repositories: 1 is ~3x faster than 6 on mail and loses ~10 % of the size. */
  deflateLevel: 1,
  /**
   * Brotli quality and window for blobs (repository version 2): quality 0 with a 256 KiB window
   * compressed the bench corpus at ~250 MB/s of CPU to 66.7 % (deflate level 1: ~54 MB/s, 65.5 %;
   * quality 1, 4 MiB window: ~200 MB/s, 65.8 %). Mail is text; the window holds most messages.
   */
  brotliQuality: 0,
  brotliWindowBits: 18,
  /**
   * zstd level for blobs (repository version 3): level 1 compressed the bench corpus to 66.0 % at
   * about twice Brotli quality 0's speed (level 2: 65.3 %, level 3: 64.9 %, each slower).
   */
  zstdLevel: 1,
  /** A blob is stored compressed only when that saves at least this share of its bytes. */
  compressSavingMin: 0.05,
  /** A key file holds at least this many bytes of secret (32 random bytes recommended)... */
  keyFileBytesMin: 16,
  /** ...and at most this many (it is read whole). */
  keyFileBytesMax: 4096,
  /** Metadata files (config, index, snapshot) larger than this are damage, not data. */
  metadataFileBytesMax: 1024 * 1024 * 1024,
  /**
   * A metadata file's CBOR may decode to at most this many heap bytes per CBOR byte (index/cbor-bounds.ts),
   * else it is damage: what mailstore writes takes ~5 (a message of a snapshot: ~55 CBOR bytes, an
   * array, a hash and small numbers), ~30 at most (a flag change's [uid, []] entries, uids of two
   * bytes); a million one-byte empty maps, deflated to a few KiB, took ~60 (70 MB) and as long to
   * decode as a real snapshot of that size. 48, as daemonLimits.frameDecodedBytesPerByteMax.
   */
  metadataDecodedBytesPerByteMax: 48,
  /** A repository's config or lock file (a few hundred bytes of JSON) larger than this is not one mailstore wrote. */
  configFileBytesMax: 64 * 1024,
  /**
   * Data files are closed at about packBytesTarget (one batch or one blob more); one larger than
   * this, and than the records its index lists reach (one message may be up to 2 GiB), is damage
   * (check --read-data reads each whole).
   */
  dataFileBytesMax: 1024 * 1024 * 1024,
  /** A lock is rewritten this often while its holder runs... */
  lockRefreshMs: 5 * 60 * 1000,
  /** ...so one from another host that is older than this was left by a dead process. */
  lockStaleMs: 30 * 60 * 1000,
  /**
   * Two runs that write their locks at the same moment see each other's: the one whose lock comes
   * first (by time, then name) waits this long for the other to take its lock away (it is refused
   * at once); before, both were refused. A lock that stays is a holder: LOCKED after the wait.
   */
  lockContendMs: 2_000,
  /** How often that wait looks again. */
  lockContendPollMs: 20,
  /**
   * A time further ahead of this host's clock than this was written by a clock that was wrong (a
   * VM resumed, a wrong year at boot), not by hosts a little apart: another host's lock dated so is
   * stale (its age cannot be told, and judged by its time it kept forget out until that time came,
   * a year), and a snapshot file modified so is the last choice of parent (else every run for a
   * year built its delta on it, the journal since it long retired: the whole state read each time).
   */
  clockAheadMaxMs: 24 * 60 * 60 * 1000,
  /** Restore into a new store writes blobs to its packs this many bytes at a time (one fdatasync each). */
  restoreBatchBytes: 8 * 1024 * 1024,
  /** Times a new-store restore tries to claim its target's RESTORING mark while marks of restores that are gone are set aside. */
  restoreClaimAttempts: 3,
  /** Restore into a live store appends this many messages a batch (one journal record each). */
  restoreAppendMessages: 256,
  /** ...and at most about this many message bytes (a batch through the daemon is one call). */
  restoreAppendBytes: 8 * 1024 * 1024,
  /** Open read handles on data files kept by a restore or check (closed least recently used first). */
  openDataFilesMax: 64,
  /**
   * A scan of the data files no readable index file names (backup/scan.ts: restore, check and
   * `backup repair` after an index file is damaged) reads each file through one window of this
   * many bytes: record headers are read from it, bodies skipped.
   */
  scanWindowBytes: 1024 * 1024,
  /**
   * An incremental backup tries this many of the newest snapshot files (by modification time) as
   * the earlier state it adds the store's changes to, before it reads the whole state instead.
   */
  parentCandidatesMax: 3,
  /**
   * The held-ids table (backup/held-ids.ts) is written again once the ids it does not cover reach
   * 1/this of those it holds (fewer: the next runs decode the few index files it lacks instead).
   */
  heldRewriteShare: 8,
  /** Blobs of at most this many bytes in all are compressed on the main thread (no workers started). */
  inlineCompressBytesMax: 4 * 1024 * 1024,
  /**
   * Delta snapshots in a row on one whole snapshot: the next run writes a whole one (a restore
   * decodes the whole one and at most this many deltas; a damaged file breaks at most this many).
   */
  deltaChainMax: 8,
  /**
   * A chain longer than this is refused as damaged when read (CORRUPT). Far above deltaChainMax, so
   * a later mailstore that writes shorter chains still reads every chain an earlier one wrote.
   */
  deltaChainReadMax: 64,
  /** Snapshots a repository keeps decoded (materialized) while it is open: a chain's parent is read once per listing, not once per child. */
  snapshotCacheMax: 4,
  /**
   * An incremental run reads this many changed mailboxes from the store at once (each a few reads
   * on LevelDB's thread pool): one after another, their round trips were most of the run's
   * state work on a loaded machine.
   */
  changedMailboxReadsInFlight: 16,
  /**
   * A changed mailbox's change-log entries at or below the parent's highestModseq that may still be
   * there (the parent's entries of the uids the journal names) are read in one range read from the
   * lowest of them when the parent held at most twice as many entries in that range, plus this many;
   * else each is looked up. A range read costs the entries it passes, a lookup a key built and
   * sought: after an expunge of many messages every one of them was a lookup of an entry the
   * expunge deleted (2,000 of the bench's 3,000 changed uids).
   */
  changeRangeSpareEntries: 256,
} as const;
