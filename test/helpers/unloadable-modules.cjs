// Preloaded (node --require) by tests of a user's machine where a dependency does not load: every
// require whose name or resolved file matches $MAILSTORE_TEST_UNLOADABLE (a regular expression)
// throws, as a missing package or a native binary built for another node or libc does. node_modules
// is left as it is.
const Module = require('node:module');
const unloadable = new RegExp(process.env.MAILSTORE_TEST_UNLOADABLE);
const resolveFilename = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  const resolved = resolveFilename.call(this, request, ...rest);
  if (unloadable.test(request) || unloadable.test(resolved)) throw new Error(`Cannot load ${resolved} (test/helpers/unloadable-modules.cjs)`);
  return resolved;
};
