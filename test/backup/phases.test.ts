// The phase marks of a backup (src/backup/phases.ts): what MAILSTORE_BACKUP_PHASES prints, and the
// bench's note made from it (src/bench/measure/backup.ts).
import { describe, expect, it } from 'vitest';
import { phase, phaseNote, phaseTimes } from '../../src/backup/phases.js';

describe('backup phases', () => {
  it('the note lists each phase in order with whole ms, and is empty without a phases line', () => {
    const stderr = 'a progress line\n{"phases":{"node start":41.6,"modules loaded":80.2,"blobs copied":300.5}}\n';
    expect(phaseNote(stderr)).toBe('node start 42, modules loaded 80, blobs copied 301');
    expect(phaseNote('CORRUPT: INBOX uid 4 is damaged\n')).toBe('');
  });

  it('without MAILSTORE_BACKUP_PHASES a mark records nothing: only node start is reported', () => {
    expect(process.env.MAILSTORE_BACKUP_PHASES).toBeUndefined();
    phase('store and repository opened');
    expect(Object.keys(phaseTimes())).toEqual(['node start']);
  });
});
