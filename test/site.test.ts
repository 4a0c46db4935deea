/**
 * The seminar book (`make site`, scripts/build-site.mjs): built into a temporary folder from the committed notebooks,
 * then every page is opened from disk in real headless Chromium, with every request that is not a local file refused.
 * A page fails on a console error, an uncaught exception, a request that failed or left the machine, a link to a file
 * that does not exist, or an image that did not load. Each notebook page must show its formulas typeset by KaTeX.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { pathToFileURL, fileURLToPath } from 'url';
import { chromium } from 'playwright-core';
import { chromiumPath } from '../src/viz/render';

const root = path.resolve(__dirname, '..');

function htmlFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'files' ? [] : htmlFiles(p);
    return e.name.endsWith('.html') ? [p] : [];
  });
}

interface PageReport {
  page: string;
  problems: string[];
  katex: number;
}

async function checkSite(out: string): Promise<PageReport[]> {
  const browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--headless', '--no-sandbox', '--disable-gpu'] });
  const reports: PageReport[] = [];
  try {
    for (const file of htmlFiles(out).sort()) {
      const problems: string[] = [];
      const page = await browser.newPage();
      page.on('console', (m) => m.type() === 'error' && problems.push(`console error: ${m.text()}`));
      page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
      page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} (${r.failure()?.errorText})`));
      await page.route('**/*', (route) => {
        const url = route.request().url();
        if (url.startsWith('file://') || url.startsWith('data:')) return route.continue();
        problems.push(`request leaves the machine: ${url}`);
        return route.abort();
      });
      await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
      const found = await page.evaluate(() => ({
        images: Array.from(document.images).map((i) => ({ src: i.getAttribute('src') ?? '', ok: i.complete && i.naturalWidth > 0 })),
        links: Array.from(document.querySelectorAll('a[href]')).map((a) => ({ href: a.getAttribute('href') ?? '', abs: (a as HTMLAnchorElement).href })),
        katex: document.querySelectorAll('.katex').length,
      }));
      for (const i of found.images) if (!i.ok) problems.push(`image did not load: ${i.src}`);
      for (const l of found.links) {
        if (!l.abs.startsWith('file://')) continue; // http(s) links are not followed
        const target = fileURLToPath(l.abs.split('#')[0]);
        if (!fs.existsSync(target)) problems.push(`broken link: ${l.href}`);
      }
      await page.close();
      reports.push({ page: path.relative(out, file), problems, katex: found.katex });
    }
  } finally {
    await browser.close();
  }
  return reports;
}

let out: string;
let reports: PageReport[];

beforeAll(async () => {
  out = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-site-'));
  execFileSync(process.execPath, [path.join(root, 'scripts', 'build-site.mjs'), '--out', out], { cwd: root, stdio: 'pipe' });
  reports = await checkSite(out);
}, 240_000);

afterAll(() => fs.rmSync(out, { recursive: true, force: true }));

test('the book has an index, the glossary, the report, the figures and a page per notebook and per solutions notebook', () => {
  const pages = reports.map((r) => r.page);
  for (const p of ['index.html', 'glossary.html', 'reproduction.html', 'figures.html']) expect(pages).toContain(p);
  const notebooks = fs.readdirSync(path.join(root, 'notebooks')).filter((f) => /^\d\d-.*\.ipynb$/.test(f));
  const solutions = fs.readdirSync(path.join(root, 'notebooks', 'solutions')).filter((f) => f.endsWith('.ipynb'));
  expect(notebooks.length).toBe(9);
  for (const f of notebooks) expect(pages).toContain(path.join('notebooks', f.replace('.ipynb', '.html')));
  for (const f of solutions) expect(pages).toContain(path.join('notebooks', 'solutions', f.replace('.ipynb', '.html')));
});

test('every page opens from disk with no console error, no network request, no broken link and no missing image', () => {
  const bad = reports.filter((r) => r.problems.length).map((r) => `${r.page}:\n  ${r.problems.join('\n  ')}`);
  expect(bad).toEqual([]);
});

test("every notebook page shows its formulas typeset (KaTeX), and the index links every notebook", () => {
  for (const r of reports.filter((x) => /^notebooks[/\\]\d\d-/.test(x.page))) expect({ page: r.page, katex: r.katex > 0 }).toEqual({ page: r.page, katex: true });
  const index = fs.readFileSync(path.join(out, 'index.html'), 'utf8');
  for (const f of fs.readdirSync(path.join(root, 'notebooks')).filter((x) => /^\d\d-.*\.ipynb$/.test(x))) expect(index).toContain(`notebooks/${f.replace('.ipynb', '.html')}`);
});

test('the checker catches a broken page: a dead link, a missing image and a console error are all reported', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-site-bad-'));
  try {
    fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><a href="nowhere.html">x</a><img src="gone.png"><script>console.error("boom")</script>');
    const [r] = await checkSite(dir);
    expect(r.problems.some((p) => p.startsWith('broken link: nowhere.html'))).toBe(true);
    expect(r.problems.some((p) => p.startsWith('image did not load: gone.png'))).toBe(true);
    expect(r.problems.some((p) => p.includes('boom'))).toBe(true);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);
