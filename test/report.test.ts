/** REPRODUCTION.md: the paper's numbers beside ours, and verdicts that follow the numbers (not typed in). */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PROFILES, Profile } from '../src/experiments/profiles';
import { reproductionReport } from '../src/experiments/report';

const cell = (asr: number, ca: number) => ({ asr, ca });

test('the report sets the paper beside our results and judges each claim from the numbers', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-report-'));
  const saved = process.env.RVPT_CACHE;
  process.env.RVPT_CACHE = dir;
  try {
    const profile: Profile = { ...PROFILES.tiny, name: 'report-test' };
    const out = path.join(dir, 'results', 'report-test');
    fs.mkdirSync(out, { recursive: true });
    const attacks = ['BadNet', 'Blended', 'ISSBA', 'WaNet', 'TrojVQA', 'BadCLIP'];
    const rows = (f: (a: string, i: number) => { asr: number; ca: number }) => Object.fromEntries(attacks.map((a, i) => [a, f(a, i)]));
    fs.writeFileSync(path.join(out, 'table1.json'), JSON.stringify({
      table: 'table1',
      datasets: { 'fashion-mnist': { 'No defense': rows(() => cell(90, 80)), CleanCLIP: rows(() => cell(30, 79)), VPT: rows(() => cell(95, 80)), RVPT: rows((a) => cell(a === 'BadCLIP' ? 40 : 1, 79.5)) } },
      provenance: { commit: 'x', date: 'd' },
    }));
    fs.writeFileSync(path.join(out, 'fig4-pr.json'), JSON.stringify({ claims: [{ claim: 'PR claim', ours: 'a 1 b 2', holds: true }], provenance: {} }));
    const md = reproductionReport(profile);
    expect(md).toContain('| No defense | 82.69 (63.04) | 90.00 (80.00) |');
    expect(md).toMatch(/✅ reproduced\*\*: without defense every attack takes/);
    expect(md).toMatch(/🟡 partly\*\*: RVPT brings every attack to ASR ≤ 5%.*BadCLIP 40\.0/);
    expect(md).toMatch(/✅ reproduced\*\*: RVPT keeps CA within 2 points/);
    expect(md).toMatch(/🟡 partly\*\*: VPT without the FR loss keeps the BadCLIP backdoor.*VPT 95\.0%, RVPT 40\.0%/);
    expect(md).toMatch(/✅ reproduced\*\*: PR claim \(a 1 b 2\)/);
    expect(md).toMatch(/⬜ not measured\*\*: Fig\. 6/);
    expect(md).toMatch(/⬜ not measured\*\*: the table \(no results file\)/); // Table 2 missing
  } finally {
    if (saved === undefined) delete process.env.RVPT_CACHE;
    else process.env.RVPT_CACHE = saved;
  }
});


test('a damaged result file is an error naming it, never "not measured"', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-report-bad-'));
  const saved = process.env.RVPT_CACHE;
  process.env.RVPT_CACHE = dir;
  try {
    const out = path.join(dir, 'results', 'report-bad');
    fs.mkdirSync(out, { recursive: true });
    fs.writeFileSync(path.join(out, 'table1.json'), '{"table": "table1", "datasets": {');
    expect(() => reproductionReport({ ...PROFILES.tiny, name: 'report-bad' })).toThrow(/table1\.json is not valid JSON.*npx rvpt tables/);
  } finally {
    if (saved === undefined) delete process.env.RVPT_CACHE;
    else process.env.RVPT_CACHE = saved;
  }
});

test('the committed REPRODUCTION.md is what `rvpt report` makes of the committed result files', () => {
  const committed = fs.readFileSync(path.join(__dirname, '..', 'REPRODUCTION.md'), 'utf8');
  expect(reproductionReport(PROFILES.transfer)).toBe(committed);
});

test("the in-domain setting's report (research/results/in-domain/) is what `rvpt report` makes of its files", () => {
  const dir = path.join(__dirname, '..', 'research', 'results', 'in-domain');
  expect(reproductionReport(PROFILES.small, dir)).toBe(fs.readFileSync(path.join(dir, 'REPRODUCTION.md'), 'utf8'));
});
