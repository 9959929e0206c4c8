// Where a measurement's memory is, at one moment (the tier step's RSS goal): V8's own figures,
// the kernel's split of resident memory into anonymous and file-backed pages, and the number of
// threads (each worker thread is a V8 isolate with its own heap and, in glibc, its own malloc arena).
import { nodeFileSystem } from '../../fs/node-fs.js';

export interface MemoryProbe {
  rss_now_bytes: number;
  rss_anon_bytes: number;
  rss_file_bytes: number;
  heap_used_bytes: number;
  heap_total_bytes: number;
  external_bytes: number;
  array_buffers_bytes: number;
  threads: number;
}

/** The figures now; the /proc ones are 0 where there is no /proc (not Linux). */
export async function memoryProbe(): Promise<MemoryProbe> {
  const usage = process.memoryUsage();
  const status = await procStatus();
  const kib = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) * 1024;
  return {
    rss_now_bytes: usage.rss,
    rss_anon_bytes: kib('RssAnon'),
    rss_file_bytes: kib('RssFile'),
    heap_used_bytes: usage.heapUsed,
    heap_total_bytes: usage.heapTotal,
    external_bytes: usage.external,
    array_buffers_bytes: usage.arrayBuffers,
    threads: Number(/Threads:\s+(\d+)/.exec(status)?.[1] ?? 0),
  };
}

async function procStatus(): Promise<string> {
  try {
    return (await nodeFileSystem.readFile('/proc/self/status')).toString('latin1');
  } catch {
    return '';
  }
}
