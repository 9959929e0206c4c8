// Ctrl-C during long work stops at a safe point instead of mid-write: the first SIGINT sets a
// flag the work loop checks between batches; a second one exits at once (the store is
// crash-safe, so even that loses nothing acknowledged, only the summary).
import { EXIT } from './exit-codes.js';

export interface Interrupt {
  readonly requested: boolean;
  dispose(): void;
}

export function catchInterrupt(what: string): Interrupt {
  let requested = false;
  const handler = () => {
    if (requested) {
      process.stderr.write('\nmailstore: stopped at once\n');
      process.exit(EXIT.interrupted);
    }
    requested = true;
    process.stderr.write(`\nmailstore: stopping ${what} at the next safe point (Ctrl-C or SIGTERM again to stop at once)\n`);
  };
  // SIGTERM too (kill, a service manager, a container stopping): it killed an import before it
  // printed its summary and left an export's temp file beside --out (found session 30)
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    get requested() { return requested; },
    dispose() {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}
