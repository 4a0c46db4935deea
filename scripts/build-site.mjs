#!/usr/bin/env node
// The seminar book: a static HTML site from the committed, executed notebooks, REPRODUCTION.md, the glossary and the
// figures, that opens from disk with no network (KaTeX renders the formulas at build time; its CSS and fonts, and
// highlight.js's, are copied in). Usage: node scripts/build-site.mjs [--out DIR] [--screenshot FILE.png]
// (default DIR: site/; --screenshot writes a 1280-px-wide picture of the index, the one in the README).
// Markdown: markdown-it with VS Code's KaTeX plugin; code: highlight.js. A relative link to a repository file that is
// not a page of the book (a source file, a profile) is copied under files/ so the link still works offline.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const MarkdownIt = require('markdown-it');
const katexPlugin = require('@vscode/markdown-it-katex').default;
const hljs = require('highlight.js/lib/core');
hljs.registerLanguage('typescript', require('highlight.js/lib/languages/typescript'));
hljs.registerLanguage('bash', require('highlight.js/lib/languages/bash'));
hljs.registerLanguage('json', require('highlight.js/lib/languages/json'));

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argOut = process.argv.indexOf('--out');
const out = path.resolve(argOut > 0 ? process.argv[argOut + 1] : path.join(root, 'site'));

const escapeHtml = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const write = (rel, data) => {
  const f = path.join(out, rel);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(f, data);
};

// --- Pages: repository path -> site path ------------------------------------------------------------------------------
const notebooks = fs.readdirSync(path.join(root, 'notebooks')).filter((f) => /^\d\d-.*\.ipynb$/.test(f)).sort();
const solutionsDir = path.join(root, 'notebooks', 'solutions');
const solutions = fs.existsSync(solutionsDir) ? fs.readdirSync(solutionsDir).filter((f) => f.endsWith('.ipynb')).sort() : [];
const pages = new Map([
  ['README.md', 'index.html'],
  ['REPRODUCTION.md', 'reproduction.html'],
  ['docs/GLOSSARY.md', 'glossary.html'],
  ...notebooks.map((f) => [`notebooks/${f}`, `notebooks/${f.replace(/\.ipynb$/, '.html')}`]),
  ...solutions.map((f) => [`notebooks/solutions/${f}`, `notebooks/solutions/${f.replace(/\.ipynb$/, '.html')}`]),
]);

/** A link written in repository file `from` (repo-relative), as it must read on site page `page`. */
function siteHref(href, from, page) {
  if (/^([a-z]+:|#|\/\/)/i.test(href)) return href;
  const [target, hash] = href.split('#');
  const repoPath = path.posix.normalize(path.posix.join(path.posix.dirname(from), decodeURIComponent(target)));
  let dest = pages.get(repoPath);
  if (!dest) {
    const file = path.join(root, repoPath);
    if (!repoPath.startsWith('..') && fs.existsSync(file) && fs.statSync(file).isFile()) {
      dest = `files/${repoPath}`;
      write(dest, fs.readFileSync(file));
    } else {
      dest = `missing/${repoPath}`; // left broken on purpose: the site test reports it
    }
  }
  const rel = path.posix.relative(path.posix.dirname(page), dest) || path.posix.basename(dest);
  return hash ? `${rel}#${hash}` : rel;
}

function markdown(from, page) {
  const md = new MarkdownIt({ html: true, linkify: false }).use(katexPlugin, { throwOnError: true });
  const linkOpen = md.renderer.rules.link_open ?? ((tokens, i, opts, env, self) => self.renderToken(tokens, i, opts));
  md.renderer.rules.link_open = (tokens, i, opts, env, self) => {
    const t = tokens[i];
    t.attrSet('href', siteHref(t.attrGet('href'), from, page));
    return linkOpen(tokens, i, opts, env, self);
  };
  const image = md.renderer.rules.image;
  md.renderer.rules.image = (tokens, i, opts, env, self) => {
    tokens[i].attrSet('src', siteHref(tokens[i].attrGet('src'), from, page));
    return image(tokens, i, opts, env, self);
  };
  md.options.highlight = (code, lang) => (lang && hljs.getLanguage(lang) ? hljs.highlight(code, { language: lang }).value : '');
  return md;
}

function layout(page, title, body) {
  const up = path.posix.relative(path.posix.dirname(page), '.') || '.';
  const a = (p) => `${up}/${p}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · rvpt-notebooks</title>
<link rel="stylesheet" href="${a('assets/katex/katex.min.css')}">
<link rel="stylesheet" href="${a('assets/github.min.css')}">
<link rel="stylesheet" href="${a('assets/site.css')}">
</head><body>
<nav><a href="${a('index.html')}">rvpt-notebooks</a> · <a href="${a('glossary.html')}">Glossary</a> · <a href="${a('reproduction.html')}">Reproduction report</a> · <a href="${a('figures.html')}">Figures</a></nav>
<main>
${body}
</main>
</body></html>
`;
}

// --- Notebooks --------------------------------------------------------------------------------------------------------
const text = (x) => (Array.isArray(x) ? x.join('') : x ?? '');

function renderNotebook(repoPath) {
  const page = pages.get(repoPath);
  const nb = JSON.parse(fs.readFileSync(path.join(root, repoPath), 'utf8'));
  const md = markdown(repoPath, page);
  const stem = path.basename(repoPath, '.ipynb');
  let title = stem;
  let img = 0;
  const parts = [];
  for (const cell of nb.cells) {
    const src = text(cell.source);
    if (cell.cell_type === 'markdown') {
      if (title === stem) title = (src.match(/^#\s+(.+)$/m) ?? [, stem])[1];
      parts.push(`<section class="md">${md.render(src)}</section>`);
      continue;
    }
    if (cell.cell_type !== 'code') continue;
    parts.push(`<pre class="code"><code class="hljs language-typescript">${hljs.highlight(src, { language: 'typescript' }).value}</code></pre>`);
    for (const o of cell.outputs ?? []) {
      if (o.output_type === 'stream') parts.push(`<pre class="out ${o.name}">${escapeHtml(text(o.text))}</pre>`);
      else if (o.output_type === 'error') parts.push(`<pre class="out stderr">${escapeHtml(`${o.ename}: ${o.evalue}`)}</pre>`);
      else if (o.data?.['image/png']) {
        const name = `${stem}-${++img}.png`;
        write(path.posix.join(path.posix.dirname(page), 'img', name), Buffer.from(text(o.data['image/png']), 'base64'));
        parts.push(`<figure><img src="img/${name}" alt="figure ${img} of ${escapeHtml(stem)}"></figure>`);
      } else if (o.data?.['text/markdown']) parts.push(`<div class="out md">${md.render(text(o.data['text/markdown']))}</div>`);
      else if (o.data?.['text/plain']) parts.push(`<pre class="out">${escapeHtml(text(o.data['text/plain']))}</pre>`);
    }
  }
  write(page, layout(page, title.replace(/[*`]/g, ''), parts.join('\n')));
  const intro = nb.cells.filter((c) => c.cell_type === 'markdown').map((c) => text(c.source))[0] ?? '';
  return { repoPath, page, title, intro };
}

function renderMarkdownPage(repoPath, title) {
  const page = pages.get(repoPath);
  write(page, layout(page, title, markdown(repoPath, page).render(fs.readFileSync(path.join(root, repoPath), 'utf8'))));
}

// --- Build ------------------------------------------------------------------------------------------------------------
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });
const katexDist = path.join(path.dirname(require.resolve('katex/package.json')), 'dist');
write('assets/katex/katex.min.css', fs.readFileSync(path.join(katexDist, 'katex.min.css')));
for (const f of fs.readdirSync(path.join(katexDist, 'fonts'))) write(`assets/katex/fonts/${f}`, fs.readFileSync(path.join(katexDist, 'fonts', f)));
write('assets/github.min.css', fs.readFileSync(require.resolve('highlight.js/styles/github.min.css')));
write('assets/site.css', `body{font:16px/1.55 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1b1f24}
nav{background:#24292f;padding:.6em 1.2em}nav a{color:#fff;text-decoration:none;margin-right:.3em}
main{max-width:60em;margin:0 auto;padding:1em 1.5em 4em}
pre{overflow-x:auto;padding:.7em;border-radius:6px;font-size:13.5px;line-height:1.4}
pre.code{background:#f6f8fa;border:1px solid #d0d7de}pre.out{background:#fff;border-left:3px solid #8c959f;margin-top:-.4em}
pre.stderr{border-left-color:#cf222e}div.out{border-left:3px solid #8c959f;padding-left:.8em;margin:-.2em 0 1em}
table{border-collapse:collapse;margin:.8em 0;font-size:14px;display:block;overflow-x:auto}td,th{border:1px solid #d0d7de;padding:.25em .6em}
img{max-width:100%}figure{margin:.5em 0 1.2em}code{font-size:90%}.cards li{margin:.6em 0}
`);

const rendered = [...notebooks.map((f) => renderNotebook(`notebooks/${f}`)), ...solutions.map((f) => renderNotebook(`notebooks/solutions/${f}`))];
renderMarkdownPage('REPRODUCTION.md', 'Reproduction report');
renderMarkdownPage('docs/GLOSSARY.md', 'Glossary');

const figs = fs.readdirSync(path.join(root, 'figures')).filter((f) => f.endsWith('.png')).sort();
const slides = fs.existsSync(path.join(root, 'figures', 'slides')) ? fs.readdirSync(path.join(root, 'figures', 'slides')).filter((f) => f.endsWith('.png')).sort() : [];
for (const f of figs) write(`figures/${f}`, fs.readFileSync(path.join(root, 'figures', f)));
for (const f of slides) write(`figures/slides/${f}`, fs.readFileSync(path.join(root, 'figures', 'slides', f)));
write('figures.html', layout('figures.html', 'Figures', `<h1>Figures</h1>
${slides.length ? `<h2>One slide per claim of the paper</h2>\n${slides.map((f) => `<figure><img src="figures/slides/${f}" alt="${escapeHtml(f)}"><figcaption>${escapeHtml(f)}</figcaption></figure>`).join('\n')}` : ''}
<h2>The reproduction's figures</h2>
${figs.map((f) => `<figure><img src="figures/${f}" alt="${escapeHtml(f)}"><figcaption>${escapeHtml(f)}</figcaption></figure>`).join('\n')}`));

const firstParagraph = (intro) => (intro.split('\n\n').find((p) => p.trim() && !p.startsWith('#') && !p.startsWith('*Readable')) ?? '').replace(/\n/g, ' ');
const inline = new MarkdownIt().use(katexPlugin);
const item = (r) => `<li><a href="${r.page}">${escapeHtml(r.title.replace(/^#+\s*/, '').replace(/[*`]/g, ''))}</a><br>${inline.renderInline(firstParagraph(r.intro).replace(/\[([^\]]+)\]\([^)]+\)/g, '$1'))}</li>`;
write('index.html', layout('index.html', 'A seminar on backdoors in CLIP', `<h1>Backdoors in CLIP-style models, and a defense: a seminar in notebooks</h1>
<p>Nine notebooks that reproduce, at laptop scale and on real data, the paper <em>Defending Multimodal Backdoored Models by
Repulsive Visual Prompt Tuning</em> (RVPT). Each notebook shows an idea as a formula, writes it from scratch, checks it
against the library, then runs it on the shipped models. Every number printed is checked against a fresh run.</p>
<p>Read them in order; each takes about 15 minutes. Terms are in the <a href="glossary.html">glossary</a>; what reproduced
and what did not is in the <a href="reproduction.html">reproduction report</a>.</p>
<h2>Notebooks</h2>
<ol class="cards">
${rendered.filter((r) => !r.repoPath.includes('/solutions/')).map(item).join('\n')}
</ol>
<h2>Worked solutions to the exercises</h2>
<ul class="cards">
${rendered.filter((r) => r.repoPath.includes('/solutions/')).map((r) => `<li><a href="${r.page}">${escapeHtml(r.title.replace(/[*`]/g, ''))}</a></li>`).join('\n')}
</ul>
<h2>More</h2>
<ul><li><a href="figures.html">Figures</a>: one slide per claim of the paper, and every figure of the reproduction</li>
<li><a href="reproduction.html">Reproduction report</a>: preconditions, Tables 1-3, the cost table, verdicts</li>
<li><a href="glossary.html">Glossary</a></li></ul>`));
const argShot = process.argv.indexOf('--screenshot');
if (argShot > 0) {
  const { chromium } = require('playwright-core');
  // The library's lookup (CHROMIUM_PATH, then Debian's paths), with its error when there is none; `make site` builds dist/.
  const { chromiumPath } = require(path.join(root, 'dist', 'viz', 'render.js'));
  const browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--headless', '--no-sandbox', '--disable-gpu'] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(`file://${path.join(out, 'index.html')}`, { waitUntil: 'load' });
  fs.writeFileSync(path.resolve(process.argv[argShot + 1]), await page.screenshot({ type: 'png' }));
  await browser.close();
}
console.log(`[site] ${rendered.length} notebooks, ${figs.length + slides.length} figures -> ${path.relative(process.cwd(), out) || '.'}/index.html`);
