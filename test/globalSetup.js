// Before any test: (1) the compiled library in dist/ is rebuilt when a source is newer, so the tests that run it
// (the CLI, worker threads and cell processes) test the current source; (2) the tests get a cache of their own, a
// fresh temporary folder, so they never read or write the user's .cache (RVPT_TEST_CACHE names another).
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

function newestTs(dir) {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newestTs(p));
    else if (e.name.endsWith('.ts')) t = Math.max(t, fs.statSync(p).mtimeMs);
  }
  return t;
}

module.exports = async () => {
  const root = path.join(__dirname, '..');
  const built = path.join(root, 'dist', 'index.js');
  if (!fs.existsSync(built) || newestTs(path.join(root, 'src')) > fs.statSync(built).mtimeMs) {
    process.stderr.write('\n[jest] building the library (tsc), so the tests that run dist/ run the current source\n');
    fs.rmSync(path.join(root, 'dist'), { recursive: true, force: true });
    execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.json')], { stdio: 'inherit' });
  }
  process.env.RVPT_CACHE = process.env.RVPT_TEST_CACHE || fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-test-cache-'));
};
