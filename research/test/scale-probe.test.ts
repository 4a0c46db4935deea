/** The scale probe: Table 1 at two widths side by side, and RVPT's CA change split into VPT's and the repelling's. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { caShareRows, committedCaShares, committedScaleProbe, scaleProbeRows } from '../src/scaleProbe';

const cell = (asr: number, ca: number) => ({ asr, ca });

test('the scale probe sets two tables side by side, from their files, and names a missing file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-scale-'));
  const write = (name: string, noDefenseCa: number, rvpt: { asr: number; ca: number }) => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, JSON.stringify({ table: 'table1', datasets: { 'fashion-mnist': { 'No defense': { Blended: cell(96.5, noDefenseCa) }, VPT: { Blended: cell(76, 82.5) }, RVPT: { Blended: rvpt } } }, provenance: {} }));
    return f;
  };
  try {
    const cols = [{ label: 'a', file: write('a.json', 85.6, cell(58.27, 74.43)) }, { label: 'b', file: write('b.json', 86.8, cell(42.98, 82.76)) }];
    const { header, rows } = scaleProbeRows(cols, 'fashion-mnist');
    expect(header).toEqual(['attack', 'method', 'a: ASR (CA)', 'b: ASR (CA)', 'a: RVPT CA − no defense', 'b: RVPT CA − no defense']);
    expect(rows).toEqual([
      ['Blended', 'No defense', '96.50 (85.60)', '96.50 (86.80)', '', ''],
      ['Blended', 'VPT', '76.00 (82.50)', '76.00 (82.50)', '', ''],
      ['Blended', 'RVPT', '58.27 (74.43)', '42.98 (82.76)', '-11.2', '-4.0'],
    ]);
    expect(() => scaleProbeRows([cols[0], { label: 'gone', file: path.join(dir, 'gone.json') }], 'fashion-mnist')).toThrow(/gone\.json \(column 'gone'\) does not exist/);
    expect(() => scaleProbeRows(cols, 'emoji')).toThrow(/a\.json has no dataset 'emoji' \(it has fashion-mnist\)/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the committed scale probe holds Table 1 at both widths, for the same attacks', () => {
  const { rows } = scaleProbeRows(committedScaleProbe(), 'fashion-mnist');
  expect(rows.map((r) => r[0]).filter((a, i, all) => all.indexOf(a) === i)).toEqual(['BadNet', 'Blended', 'ISSBA', 'WaNet', 'TrojVQA', 'BadCLIP']);
  for (const r of rows) expect(r[3]).toMatch(/^\d+\.\d\d \(\d+\.\d\d\)$/);
});

test('the CA shares split RVPT’s CA change into VPT’s and the repelling’s, from the tables, after the paper’s BadCLIP cell', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-shares-'));
  try {
    const f = path.join(dir, 't.json');
    const ds = { 'No defense': { Blended: cell(96.5, 85.6), WaNet: cell(80, 85.5) }, VPT: { Blended: cell(76, 82.51) }, RVPT: { Blended: cell(58.27, 74.43), WaNet: cell(0.1, 73.8) } };
    fs.writeFileSync(f, JSON.stringify({ table: 'table1', datasets: { 'fashion-mnist': ds }, provenance: {} }));
    const { header, rows } = caShareRows([{ label: 'a', file: f, dataset: 'fashion-mnist' }]);
    expect(header).toEqual(['model', 'dataset', 'attack', 'No defense CA', 'VPT minus No defense', 'RVPT minus VPT', 'RVPT minus No defense']);
    // The paper: No defense 61.33, VPT 64.32 (Table 8), RVPT 61.81. WaNet has no VPT cell here, so no row.
    expect(rows).toEqual([
      ['paper: CLIP ViT-B/32', 'ImageNet', 'BadCLIP', '61.33', '+3.0', '-2.5', '+0.5'],
      ['a', 'fashion-mnist', 'Blended', '85.60', '-3.1', '-8.1', '-11.2'],
    ]);
    expect(() => caShareRows([{ label: 'a', file: f, dataset: 'emoji' }])).toThrow(/t\.json has no dataset 'emoji' \(it has fashion-mnist\)/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const committed = caShareRows(committedCaShares()).rows;
  expect(committed.filter((r) => r[1] === 'fashion-mnist').length).toBe(12); // six attacks at each width
  expect(committed.filter((r) => r[1] === 'emoji').map((r) => r[2])).toEqual(['BadNet', 'Blended', 'WaNet']);
});
