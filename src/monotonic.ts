// Elapsed time for waits, timeouts and rates. performance.now() reads the same clock, but the first
// touch of node's global `performance` loads perf_hooks (~10 of node's modules, ~6-12M instructions
// by callgrind), which every command that times anything paid at start: an append times its wait
// for the lock (issue 16). One clock for all of src, so no time from one is compared with the other.

/** Milliseconds on the monotonic clock (CLOCK_MONOTONIC, as performance.now()), from an arbitrary origin. */
export function monotonicMs(): number {
  const [seconds, nanoseconds] = process.hrtime();
  return seconds * 1000 + nanoseconds / 1e6;
}
