#!/usr/bin/env python3
"""Check the committed notebooks against a fresh execution, and their shape.

Usage: scripts/check-notebooks.py EXECUTED_DIR TAG NOTEBOOK...
For each committed NOTEBOOK (its outputs were made by `make notebooks`), EXECUTED_DIR/NAME.TAG.ipynb is a fresh
execution of it (scripts/run-notebooks.sh). The check fails when
  - a committed notebook has no outputs, an error output, or weighs more than 1 MB;
  - a cell's printed text (stdout, markdown, plain text) differs from the fresh run's, numbers compared to the
    precision they were printed with (two units of the last printed digit, for float noise between machines);
    figures are compared by count only (their pixels depend on fonts);
  - a teaching notebook (notebooks/NN-*.ipynb) lacks what every one must have: 20-40 cells, a formula in LaTeX,
    a parameters cell, a link to the glossary, an Exercises section, and a solutions notebook.
"""
import json, os, re, sys

NUM = re.compile(r'-?\d+(?:\.\d+)?(?:e[-+]?\d+)?')
MAX_BYTES = 1_000_000


def texts(cell):
    """A cell's printed text, without lines marked ⏱ (timings: they differ run to run), and its figure count."""
    out, images = [], 0
    for o in cell.get('outputs', []):
        t = o.get('output_type')
        if t == 'stream' and o.get('name') == 'stdout':
            out.append(''.join(o['text']))
        elif t in ('display_data', 'execute_result'):
            d = o.get('data', {})
            if any(k.startswith('image/') for k in d):
                images += 1
            elif 'text/markdown' in d:
                out.append(''.join(d['text/markdown']))
            elif 'text/plain' in d:
                out.append(''.join(d['text/plain']))
        elif t == 'error':
            out.append(f"ERROR {o.get('ename')}: {o.get('evalue')}")
    text = '\n'.join(out)
    return '\n'.join(l for l in text.split('\n') if '⏱' not in l), images


def same_text(a, b):
    """Equal apart from numbers, and numbers equal to two units of their last printed digit."""
    if NUM.sub('#', a) != NUM.sub('#', b):
        return False
    for x, y in zip(NUM.findall(a), NUM.findall(b)):
        if x == y:
            continue
        dec = len(x.split('e')[0].split('.')[1]) if '.' in x.split('e')[0] else 0
        tol = 2 * 10 ** -dec if 'e' not in x.lower() else 2 * abs(float(x)) * 10 ** -dec
        if abs(float(x) - float(y)) > tol + 1e-12:
            return False
    return True


def shape_problems(path, nb):
    problems = []
    cells = nb['cells']
    md = '\n'.join(''.join(c['source']) for c in cells if c['cell_type'] == 'markdown')
    code = [''.join(c['source']) for c in cells if c['cell_type'] == 'code']
    if not 20 <= len(cells) <= 40:
        problems.append(f'{len(cells)} cells; a teaching notebook has 20-40')
    if '$' not in md:
        problems.append('no formula ($...$) in any markdown cell')
    if not any(c.lstrip().startswith('// Parameters') for c in code):
        problems.append('no parameters cell (a code cell starting "// Parameters")')
    if 'GLOSSARY.md' not in md:
        problems.append('no link to the glossary (docs/GLOSSARY.md)')
    if not re.search(r'^## Exercises', md, re.M):
        problems.append('no "## Exercises" section')
    name = os.path.basename(path)[:-len('.ipynb')]
    sol = os.path.join(os.path.dirname(path), 'solutions', f'{name}-solutions.ipynb')
    if not os.path.exists(sol):
        problems.append(f'no worked solutions ({sol})')
    return problems


def main():
    executed, tag, notebooks = sys.argv[1], sys.argv[2], sys.argv[3:]
    failures = 0
    for path in notebooks:
        name = os.path.basename(path)[:-len('.ipynb')]
        problems = []
        size = os.path.getsize(path)
        if size > MAX_BYTES:
            problems.append(f'{size / 1e6:.2f} MB committed; at most 1 MB')
        committed = json.load(open(path))
        if re.match(r'\d\d-', name) and os.path.basename(os.path.dirname(os.path.abspath(path))) == 'notebooks':
            problems += shape_problems(path, committed)
        code = [c for c in committed['cells'] if c['cell_type'] == 'code']
        if not any(c.get('outputs') for c in code):
            problems.append('committed without outputs: run `make notebooks` and commit the result')
        fresh_path = os.path.join(executed, f'{name}.{tag}.ipynb')
        if not os.path.exists(fresh_path):
            problems.append(f'no fresh execution at {fresh_path}')
        else:
            fresh = [c for c in json.load(open(fresh_path))['cells'] if c['cell_type'] == 'code']
            if len(fresh) != len(code):
                problems.append(f'{len(code)} code cells committed, {len(fresh)} executed: the committed copy is stale')
            else:
                for i, (a, b) in enumerate(zip(code, fresh)):
                    (ta, ia), (tb, ib) = texts(a), texts(b)
                    if 'ERROR' in ta:
                        problems.append(f'code cell {i + 1}: the committed output is an error: {ta[:200]}')
                    if ''.join(a['source']) != ''.join(b['source']):
                        problems.append(f'code cell {i + 1}: source differs from the executed copy')
                    elif not same_text(ta, tb):
                        problems.append(f'code cell {i + 1}: printed output differs\n      committed: {ta[:300]!r}\n      fresh:     {tb[:300]!r}')
                    elif ia != ib:
                        problems.append(f'code cell {i + 1}: {ia} figures committed, {ib} in the fresh run')
        status = 'ok' if not problems else 'FAILED'
        print(f'[check-notebooks] {name}: {status} ({size / 1e3:.0f} kB)')
        for p in problems:
            print(f'    - {p}')
        failures += bool(problems)
    if failures:
        print(f'[check-notebooks] {failures} notebook(s) failed. To refresh committed outputs after a deliberate change: make notebooks')
        sys.exit(1)


if __name__ == '__main__':
    main()
