// The store's workers are CommonJS source evaluated in a new thread (`new Worker(source, { eval:
// true })`), and a worker inherits its process's node flags: in a process started with
// `node --input-type=module -e ...` (or --experimental-default-type=module) the source was taken
// for an ES module, `require` was not defined, and every worker died at its first line. The hash
// pool and the backup's compressors then did their work on the main thread: the same results,
// slower, and nothing said why but `compressionWorkerLost` (found session 29).

/** Flags that decide how source given as a string is read, with their value (`--flag=v` or `--flag v`). */
const MODULE_TYPE_FLAGS = ['--input-type', '--experimental-default-type'];

/** This process's node flags, less those that would read a worker's eval'd CommonJS source as an ES module. */
export function commonJsWorkerArgv(execArgv: readonly string[] = process.execArgv): string[] {
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const arg = execArgv[i]!;
    if (MODULE_TYPE_FLAGS.includes(arg)) {
      i++; // its value is the next argument
      continue;
    }
    if (MODULE_TYPE_FLAGS.some((flag) => arg.startsWith(`${flag}=`))) continue;
    out.push(arg);
  }
  return out;
}
