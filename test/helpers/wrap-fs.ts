// A thin test wrapper over the real FileSystem: counts syncs and injects one-shot or persistent
// errors by operation kind and path. (The full crash-state model is test/sim/faultfs.ts.)
import type { FileHandle, FileStat, FileSystem, HeldDirectory, OpenMode } from '../../src/fs/filesystem.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';

export type OpKind = 'open' | 'write' | 'sync' | 'truncate' | 'rename' | 'unlink' | 'mkdir' | 'syncDir' | 'read' | 'readdir' | 'readFile' | 'stat';

export interface Rule {
  kinds: OpKind[];
  code: string;
  /** Only paths containing this. */
  pathIncludes?: string;
  /** Fire only this many times (default: until removed). */
  times?: number;
  /** For open: only when creating. */
  creating?: boolean;
}

export function systemError(code: string, syscall: string, path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: simulated, ${syscall} '${path}'`), { code, syscall, path, errno: -1 });
}

export class WrapFs implements FileSystem {
  syncs = 0;
  dirSyncs = 0;
  writes = 0;
  rules: Rule[] = [];

  constructor(private readonly inner: FileSystem = nodeFileSystem) {}

  fail(rule: Rule): Rule {
    this.rules.push(rule);
    return rule;
  }

  clear(): void {
    this.rules = [];
  }

  check(kind: OpKind, path: string, creating = false): void {
    for (const rule of this.rules) {
      if (!rule.kinds.includes(kind)) continue;
      if (rule.pathIncludes && !path.includes(rule.pathIncludes)) continue;
      if (rule.creating && !creating) continue;
      if (rule.times !== undefined) {
        if (rule.times <= 0) continue;
        rule.times--;
      }
      throw systemError(rule.code, kind, path);
    }
  }

  async open(path: string, mode: OpenMode): Promise<FileHandle> {
    this.check('open', path, mode === 'createNew' || mode === 'createOrOpen');
    const handle = await this.inner.open(path, mode);
    const self = this;
    return {
      path,
      read: (b, o, l, p) => { self.check('read', path); return handle.read(b, o, l, p); },
      write: async (data, position) => { self.writes++; self.check('write', path); return handle.write(data, position); },
      writev: async (parts, position) => { self.writes++; self.check('write', path); return handle.writev(parts, position); },
      sync: async () => { self.syncs++; self.check('sync', path); return handle.sync(); },
      truncate: async (n) => { self.check('truncate', path); return handle.truncate(n); },
      size: () => handle.size(),
      stat: () => handle.stat(),
      close: () => handle.close(),
    };
  }
  readFile(path: string): Promise<Buffer> { this.check('readFile', path); return this.inner.readFile(path); }
  readdir(path: string): Promise<string[]> { this.check('readdir', path); return this.inner.readdir(path); }
  stat(path: string): Promise<FileStat> { this.check('stat', path); return this.inner.stat(path); }
  statIfExists(path: string): Promise<FileStat | undefined> { this.check('stat', path); return this.inner.statIfExists(path); }
  holdDirectory(path: string, options?: { noFollow?: boolean }): Promise<HeldDirectory> { return this.inner.holdDirectory(path, options); }
  lstat(path: string): Promise<FileStat> { this.check('stat', path); return this.inner.lstat(path); }
  lstatIfExists(path: string): Promise<FileStat | undefined> { this.check('stat', path); return this.inner.lstatIfExists(path); }
  async mkdir(path: string): Promise<void> { this.check('mkdir', path, true); return this.inner.mkdir(path); }
  async rename(from: string, to: string): Promise<void> { this.check('rename', to); return this.inner.rename(from, to); }
  async renameNoReplace(from: string, to: string): Promise<void> { this.check('rename', to); return this.inner.renameNoReplace(from, to); }
  async unlink(path: string): Promise<void> { this.check('unlink', path); return this.inner.unlink(path); }
  rmdir(path: string): Promise<void> { return this.inner.rmdir(path); }
  removeTree(path: string): Promise<void> { return this.inner.removeTree(path); }
  utimes(path: string, mtime: Date): Promise<void> { return this.inner.utimes(path, mtime); }
  async syncDir(path: string): Promise<void> { this.dirSyncs++; this.check('syncDir', path); return this.inner.syncDir(path); }
}
