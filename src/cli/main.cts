#!/usr/bin/env node
// The `mailstore` executable (package.json "bin"), in CommonJS: node runs an ES module entry (main.js,
// the package being "type": "module") through its ES module loader, which a CommonJS entry never
// starts: ~5-9 ms of every command's start (issue 16). It runs the bundled CLI through the loader as
// CommonJS (bundle-loader.cjs, written by tools/bundle-cli.ts) while the bundle is current, and
// main.js otherwise (a plain `tsc` since, or no bundle at all), which is the same program.

/** What bundle-loader.cjs exports (src/fs/module-cache.ts). */
interface Loader {
  runBundleIfCurrent(dir: string): boolean;
}

function bundleLoader(): Loader | undefined {
  try {
    return require('./bundle-loader.cjs') as Loader;
  } catch (error) {
    // no bundle (tsc only, or a build without rolldown); anything else is a real failure
    if ((error as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' && String((error as Error).message).includes('bundle-loader.cjs')) return undefined;
    throw error;
  }
}

if (!bundleLoader()?.runBundleIfCurrent(__dirname)) void import('./main.js');
