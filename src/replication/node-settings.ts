// The per-node settings beside STORE (INLINE-BODIES, FREE-SPACE-RESERVE, JOURNAL-ARCHIVE) are files,
// not records, so replication does not carry them: a promoted replica ran with its own (without the
// journal archive its primary had, say) and nothing said so. The primary names its settings in its
// welcome (an optional field an older replica ignores); the replica keeps the last announcement
// (PRIMARY-SETTINGS) and warns at each connect and at promote about every setting that differs.
import type { FileSystem } from '../fs/filesystem.js';
import { INLINE_BODIES_FILE, readInlineBodyBytes } from '../store/inline-setting.js';
import { FREE_SPACE_RESERVE_FILE, readReserveBytes } from '../store/reserve-setting.js';
import { readSetting, writeSetting, type StoreRoot } from '../store/setting-file.js';
import { JOURNAL_ARCHIVE_FILE, readJournalArchive } from '../store/journal-archive.js';

/** The file in a replica's root holding its primary's last announced settings. */
export const PRIMARY_SETTINGS_FILE = 'PRIMARY-SETTINGS';

/** Each setting file's value: null when absent (the default), 'damaged' when unreadable. */
export type NodeSettings = Record<string, number | string | null>;

const SETTINGS: [file: string, read: (fs: FileSystem, root: string) => Promise<number | string | undefined>, command: string][] = [
  [INLINE_BODIES_FILE, readInlineBodyBytes, 'mailstore config --inline-bytes-max N|default'],
  [FREE_SPACE_RESERVE_FILE, readReserveBytes, 'mailstore config --free-space-reserve N|default'],
  [JOURNAL_ARCHIVE_FILE, readJournalArchive, 'mailstore snapshot --journal-archive DIR|off'],
];

export async function readNodeSettings(fs: FileSystem, root: string): Promise<NodeSettings> {
  const out: NodeSettings = {};
  for (const [file, read] of SETTINGS) out[file] = await read(fs, root).then((value) => value ?? null, () => 'damaged');
  return out;
}

/** One WARNING line per setting of `primary` that this node's differs from (none for an older primary, which names none). */
export function settingWarnings(primary: NodeSettings | undefined, own: NodeSettings, address: string): string[] {
  if (!primary) return [];
  const shown = (value: number | string | null | undefined) => (value === null || value === undefined ? 'none (the default)' : String(value));
  return SETTINGS.filter(([file]) => file in primary && primary[file] !== own[file]).map(([file, , command]) =>
    `replication: WARNING: ${file} is ${shown(primary[file])} on the primary ${address} and ${shown(own[file])} here: settings are per node and not replicated; a promoted replica runs with its own (set it here with '${command}')`);
}

/** The settings a primary's welcome named, or undefined (an older primary, or a malformed field). */
export function announcedSettings(value: unknown): NodeSettings | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const out: NodeSettings = {};
  for (const [file] of SETTINGS) {
    const setting = (value as Record<string, unknown>)[file];
    if (setting === null || typeof setting === 'number' || typeof setting === 'string') out[file] = setting;
  }
  return out;
}

/** Keeps the primary's announcement durably (written only when it changed), for a later promote. */
export async function notePrimarySettings(store: StoreRoot, settings: NodeSettings): Promise<void> {
  const text = JSON.stringify(settings);
  if ((await readSetting(store.fs, store.root, PRIMARY_SETTINGS_FILE, 'the primary settings note'))?.text === text) return;
  await writeSetting(store, PRIMARY_SETTINGS_FILE, text, 'the primary settings note');
}

/**
 * Removes the note: once this node is promoted, or follows a primary that names no settings (an
 * older one), it is of a primary this node no longer follows, and a later promote warned about
 * that one's settings as if they were the current primary's.
 */
export async function forgetPrimarySettings(store: StoreRoot): Promise<void> {
  await writeSetting(store, PRIMARY_SETTINGS_FILE, undefined, 'the primary settings note');
}

/** The primary's last announcement, or undefined (none kept, or damaged: it is only a reminder). */
export async function readPrimarySettings(fs: FileSystem, root: string): Promise<NodeSettings | undefined> {
  const stored = await readSetting(fs, root, PRIMARY_SETTINGS_FILE, 'the primary settings note').catch(() => undefined);
  if (!stored?.intact) return undefined;
  try {
    return announcedSettings(JSON.parse(stored.text));
  } catch {
    return undefined;
  }
}
