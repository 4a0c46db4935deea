#!/usr/bin/env node
// The `rvpt` command. It runs the compiled library in dist/; build it with `npm run build` (make does it).
const path = require('path');
const fs = require('fs');
const cli = path.join(__dirname, '..', 'dist', 'cli.js');
if (!fs.existsSync(cli)) {
  process.stderr.write('rvpt: the library is not built yet. Run `npm run build` (or `make build`) in ' + path.join(__dirname, '..') + '\n');
  process.exit(1);
}
require(cli)
  .main(process.argv.slice(2))
  .then((code) => process.exit(code));
