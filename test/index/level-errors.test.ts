// LevelDB's open failures as the store must treat them: the texts are the ones classic-level 3
// reports (seen on a full tmpfs, an unreadable index/, a lost CURRENT); EIO cannot be made on demand.
import { describe, expect, it } from 'vitest';
import { classifyLevelError } from '../../src/index/level-errors.js';

/** What classic-level throws from open(): a wrapper whose cause carries LevelDB's status text. */
function openFailure(code: string | undefined, text: string): Error {
  return Object.assign(new Error('Database failed to open'), { code: 'LEVEL_DATABASE_NOT_OPEN', cause: Object.assign(new Error(text), code ? { code } : {}) });
}

describe('classifyLevelError', () => {
  it.each([
    ['LEVEL_IO_ERROR', 'IO error: /s/index/000005.ldb: No space left on device', { kind: 'system', code: 'NO_SPACE' }],
    ['LEVEL_IO_ERROR', 'IO error: /s/index/MANIFEST-000004: Disk quota exceeded', { kind: 'system', code: 'NO_SPACE' }],
    ['LEVEL_IO_ERROR', 'IO error: /s/index/LOCK: Permission denied', { kind: 'system', code: 'ACCESS' }],
    ['LEVEL_IO_ERROR', 'IO error: /s/index/LOCK: Read-only file system', { kind: 'system', code: 'ACCESS' }],
    ['LEVEL_IO_ERROR', 'IO error: /s/index/000007.log: Input/output error', { kind: 'system', code: 'IO' }],
    ['LEVEL_IO_ERROR', 'IO error: /s/index/000007.ldb: Too many open files', { kind: 'system', code: 'IO' }],
    ['LEVEL_IO_ERROR', 'IO error: /s/index/MANIFEST-000002: No such file or directory', { kind: 'damage' }],
    ['LEVEL_CORRUPTION', 'Corruption: 1 missing files; e.g.: /s/index/000005.ldb', { kind: 'damage' }],
    [undefined, 'Invalid argument: /s/index/: does not exist (create_if_missing is false)', { kind: 'damage' }],
    ['LEVEL_LOCKED', 'IO error: lock /s/index/LOCK: Resource temporarily unavailable', { kind: 'locked' }],
  ])('%s %s', (code, text, expected) => {
    expect(classifyLevelError(openFailure(code, text))).toMatchObject(expected);
    // the probe child passes on only the text
    expect(classifyLevelError(new Error(text))).toMatchObject(expected);
  });
});
