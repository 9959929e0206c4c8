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
    process.stderr.write(`\nmailstore: stopping ${what} at the next safe point (Ctrl-C again to stop at once)\n`);
  };
  process.on('SIGINT', handler);
  return {
    get requested() { return requested; },
    dispose() { process.off('SIGINT', handler); },
  };
}
