// Bounds of import and export. They belong with the others in src/limits.ts; kept here until the
// lead moves them (only src/import and src/cli are this module's to change).

export const importLimits = {
  /** An import batch (one appendBatch, one journal record, one fsync pair) holds at most this many messages... */
  batchMessagesMax: 500,
  /** ...and at most this many message bytes (one bigger message goes alone). */
  batchBytesMax: 32 * 1024 * 1024,
  /** Unreadable files listed one by one in a summary; the rest are counted. */
  skippedListedMax: 100,
} as const;
