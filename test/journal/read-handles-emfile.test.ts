// Out of descriptors (EMFILE) while opening a journal segment to read an inline body: the segments
// no reader is inside let their cached handles go and the open is tried again, as packs do
// (pack-store.ts openFreeingDescriptors), rather than failing the read IO at once.
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { FaultFileSystem, type OpInfo } from '../sim/faultfs.js';
import { tmpDir } from '../helpers/tmp.js';

const body = (i: number) => Buffer.from(`Subject: ${i}\r\n\r\n${'j'.repeat(400)}${i}\r\n`);
const segmentOpen = (op: OpInfo) => op.kind === 'read' && op.position === undefined && op.path.endsWith('.jnl');

describe('journal read handles out of descriptors', () => {
  it('an inline read whose segment open fails EMFILE lets idle segment handles go and reads on; nothing acknowledged is lost', async () => {
    const dir = tmpDir('journal-emfile');
    const options = { journalSegmentBytesMax: 4096, inlineBodyBytesMax: 1024, autoSnapshot: false } as const;
    const setup = await Store.open(dir, { create: true, ...options });
    await setup.createMailbox('INBOX');
    for (let i = 1; i <= 30; i++) await setup.append('INBOX', body(i));
    expect((await setup.stats()).journalSegments).toBeGreaterThan(1);
    await setup.close();
    const fs = new FaultFileSystem();
    const store = await Store.open(dir, { fs, ...options });
    try {
      expect(await store.fetch('INBOX', 1)).toEqual(body(1)); // its segment's handle is cached, idle once read
      fs.injectAt(segmentOpen, 'EMFILE');
      expect(await store.fetch('INBOX', 30)).toEqual(body(30));
      expect(fs.firedFaults().map((f) => f.code)).toEqual(['EMFILE']);
      for (let i = 1; i <= 30; i++) expect(await store.fetch('INBOX', i)).toEqual(body(i));
    } finally {
      await store.close();
    }
  });
});
