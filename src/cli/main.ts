#!/usr/bin/env node
// The `mailstore` executable (package.json "bin"). Everything else is in program.ts, so tests and
// tools can build the program without running it.
import { main } from './program.js';

process.exitCode = await main(process.argv);
