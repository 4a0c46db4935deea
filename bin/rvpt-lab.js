#!/usr/bin/env node
// The `rvpt-lab` command (the research probes). It runs research/dist/; build it with `make -C research build`.
const path = require('path');
const fs = require('fs');
const cli = path.join(__dirname, '..', 'research', 'dist', 'research', 'cli.js');
if (!fs.existsSync(cli)) {
  process.stderr.write('rvpt-lab: the lab is not built yet. Run `make -C research build` in ' + path.join(__dirname, '..') + '\n');
  process.exit(1);
}
require(cli)
  .main(process.argv.slice(2))
  .then((code) => process.exit(code));
