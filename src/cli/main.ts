#!/usr/bin/env node
// The `mailstore` executable (package.json "bin"). Everything else is in program.ts, so tests and
// tools can build the program without running it. No top-level await: tools/bundle-cli.ts bundles
// this entry as CommonJS (for V8's code cache, src/fs/module-cache.ts).
import { main } from './program.js';

void main(process.argv).then((code) => { process.exitCode = code; });
