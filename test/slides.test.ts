/** The slides (`rvpt slides`): one per claim, drawn from the committed result files, each titled with its verdict. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { slideSpecs } from '../src/experiments/slides';
import { PROFILES } from '../src/experiments/profiles';

const figures = path.join(__dirname, '..', 'figures');

test('one slide per claim, from the committed results, each with the claim, what was measured and a 1280 x 720 figure', () => {
  const specs = slideSpecs(PROFILES.transfer, figures);
  expect(specs.map((s) => s.slide.file)).toEqual(['01-preconditions.png', '02-table1.png', '03-table2.png', '04-linear-probe.png', '05-table3.png', '06-cost.png', '07-pr.png', '08-attention.png', '09-embeddings.png', '10-ablations.png']);
  for (const s of specs) {
    expect(s.fig.layout.width).toBe(1280);
    expect(s.fig.layout.height).toBe(720);
    expect(s.fig.data.length).toBeGreaterThan(0);
  }
  // The verdicts follow the numbers and the preconditions: Table 1 is untestable here, the memory claim not reproduced.
  expect(specs[1].slide.result).toMatch(/^fashion-mnist: untestable \(preconditions P1, P2, P3 do not hold here\): 1\/7 cases hold/);
  expect(specs[5].slide.result).toMatch(/memory \(peak RSS\): not reproduced/);
});

test('the committed slides index lists the same slides as the committed results make', () => {
  const index = JSON.parse(fs.readFileSync(path.join(figures, 'slides', 'slides.json'), 'utf8'));
  expect(index.slides).toEqual(slideSpecs(PROFILES.transfer, figures).map((s) => s.slide));
  for (const s of index.slides) expect(fs.existsSync(path.join(figures, 'slides', s.file))).toBe(true);
});

test('a corrupt result file is an error naming the file, not a missing slide', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-slides-'));
  try {
    fs.writeFileSync(path.join(dir, 'table1.json'), '{ not json');
    expect(() => slideSpecs(PROFILES.transfer, dir)).toThrow(/table1\.json is not valid JSON/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
