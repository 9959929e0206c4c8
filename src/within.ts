// Waiting for something that may never come, at most so long: a call on a hung mount (an NFS server
// gone, a FUSE daemon stopped) neither returns nor fails, and whatever awaited it waited with it.

/**
 * True once `work` resolves, false when `ms` pass first (the work goes on; a failure of it after
 * that is dropped, never an unhandled rejection), and `work`'s error when it fails in time.
 */
export async function answeredWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), ms); });
  work.catch(() => undefined);
  try {
    return await Promise.race([work.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}
