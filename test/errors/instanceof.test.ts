// MailstoreError's instanceof holds across copies of src/errors.ts: the CLI bundle carries its own,
// and a command loaded outside it (bench, an ES module) throws errors of tsc's copy; the bundle's
// error report must still see a MailstoreError and its code (exit 5 for INVALID, not INTERNAL 70).
import { describe, expect, it } from 'vitest';
import { MailstoreError, isMailstoreError } from '../../src/errors.js';

describe('MailstoreError instanceof', () => {
  it("an error branded by another copy of the module is a MailstoreError; plain errors and look-alikes are not", () => {
    // what another copy's instance looks like from here: a different prototype chain, the same brand
    const proto = Object.create(Error.prototype, { [Symbol.for('mailstore.MailstoreError')]: { value: true } });
    const foreign = Object.assign(Object.create(proto), { code: 'INVALID', message: 'from the other copy' });
    expect(foreign instanceof MailstoreError).toBe(true);
    expect(isMailstoreError(foreign, 'INVALID')).toBe(true);
    expect(new MailstoreError('IO', 'here') instanceof MailstoreError).toBe(true);
    expect(new Error('plain') instanceof MailstoreError).toBe(false);
    expect(Object.assign(new Error('look-alike'), { name: 'MailstoreError', code: 'INVALID' }) instanceof MailstoreError).toBe(false);
    expect(null instanceof (MailstoreError as unknown as typeof Object)).toBe(false);
    expect(new MailstoreError('IO', 'here') instanceof Error).toBe(true);
  });
});
