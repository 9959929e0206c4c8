// The writer's queue under very many mutations at once: each exclusive one is a batch of its own,
// so taking it from the head must not cost the length of the queue (that was n²: 200k took minutes).
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { Fifo } from '../../src/store/fifo.js';
import { tmpDir } from '../helpers/tmp.js';
import type { Writer } from '../../src/store/writer.js';

describe('writer queue', () => {
  it('answers 200k exclusive mutations queued at once, each with its own result, and loses no append among them', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    await store.createMailbox('INBOX');
    const writer = (store as unknown as { writer: Writer }).writer;
    const results: Promise<number>[] = [];
    const appends: Promise<{ uid: number }>[] = [];
    for (let i = 0; i < 200_000; i++) {
      // exclusive, as a rename or a delete is (a batch of its own), and nothing to write: the queue's cost alone
      results.push(writer.submit({ exclusive: true, prepare: async () => ({ ops: [], result: i }) }));
      if (i % 1000 === 0) appends.push(store.append('INBOX', Buffer.from(`Subject: ${i}\r\n\r\nbody\r\n`)));
    }
    expect((await Promise.all(results)).every((result, i) => result === i)).toBe(true);
    const uids = (await Promise.all(appends)).map((r) => r.uid);
    expect(new Set(uids).size).toBe(200);
    expect((await store.status('INBOX')).messages).toBe(200);
    await store.close();
  }, 20_000);

  it('takes from the head, puts a batch\'s rest back in order, and keeps its order across compaction', () => {
    const queue = new Fifo<number>();
    for (let i = 0; i < 10; i++) queue.push(i);
    expect(queue.take(3)).toEqual([0, 1, 2]);
    queue.putBack([1, 2]);
    expect([queue.length, queue.at(0), queue.at(8), queue.at(9)]).toEqual([9, 1, 9, undefined]);
    expect(queue.take(6)).toEqual([1, 2, 3, 4, 5, 6]);
    queue.putBack([-2, -1, 4, 5, 6]); // more than the taken slots before the head
    queue.push(10);
    expect(queue.take(100)).toEqual([-2, -1, 4, 5, 6, 7, 8, 9, 10]);
    expect([queue.length, queue.at(0)]).toEqual([0, undefined]);
  });
});
