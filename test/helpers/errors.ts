// The error code a call fails with: the one check most failure-path tests make. It must be a
// MailstoreError (a plain Error is a bug, never a caller's answer); undefined when it succeeds.
import { expect } from 'vitest';
import { MailstoreError } from '../../src/errors.js';

export async function codeOf(promise: Promise<unknown> | (() => unknown)): Promise<string | undefined> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
    return undefined;
  } catch (error) {
    expect(error).toBeInstanceOf(MailstoreError);
    return (error as MailstoreError).code;
  }
}
