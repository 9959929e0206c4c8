// A long pass over a whole store or mailbox (scrub, reconstruct --check, the daemon's flags and
// searches over 500k uids) keeps V8's young generation at the size it has when the pass starts.
// V8 doubles each semi-space after a scavenge that kept much alive, up to 16 MiB: a new space of
// 32 MiB, nearly all of it garbage between scavenges but resident, in every long pass (issue 16:
// the live heap was 17-23 MB while the peak RSS passed 256 MB; BENCHMARKS.md, "Peak RSS of admin
// operations at 500k, session 52").
//
// Only the growth factor can be changed in a running isolate: V8 fixes --max-semi-space-size when
// it makes the heap, before any JS runs. Called once the command's modules are loaded: any flag
// set changes V8's flag hash, and a chunk whose code cache is checked after that is compiled
// afresh (docs/bench/cli-start-profile.md), so a short command (append) never calls it.
import { setFlagsFromString } from 'node:v8';

/** Stops the young generation growing from here on, for the whole process (its workers too). */
export function boundYoungGeneration(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
}
