/**
 * End to end on a toy setting small enough for CI, where the backdoor takes: pre-train a tiny MiniCLIP on
 * Fashion-MNIST, poison it with BadNet, then defend it with VPT and RVPT. The bounds below were fixed before this test
 * was written, from the pipeline's behaviour on this setting (seeds 0-2 of the defenses: no-defense ASR 87.7%, VPT
 * 67-70%, RVPT 54-57%, CA 63-66% against 75.2% undefended). The test fails if the trigger, the poisoning, the prompts
 * or the FR loss stop working:
 *   - trigger or poisoning broken: the backdoor does not take (no-defense ASR near the clean-image floor);
 *   - prompts not reaching the encoder: VPT and RVPT leave the undefended model's ASR;
 *   - FR loss dropped or of the wrong sign: RVPT's ASR is no lower than VPT's.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { getProfile, Profile } from '../src/experiments/profiles';
import { ensureBackdoored } from '../src/experiments/backdoorRun';
import { cellFile, runCell } from '../src/experiments/defenseRun';
import { restoreCacheAfterAll, setup } from './helpers';

restoreCacheAfterAll();
beforeAll(setup);

const tiny = getProfile('tiny');
const TOY: Profile = {
  ...tiny,
  name: 'efficacy-toy',
  backdoor: { ...tiny.backdoor, steps: 400, rate: 0.2, lr: 0.002 },
  triggers: { ...tiny.triggers, BadNet: { patch: 8, noise: 'fixed' } },
  shots: 16,
  defenses: { ...tiny.defenses, RVPT: { epochs: 40 }, VPT: { epochs: 40 } },
  jobs: 1,
};

/** The pre-registered bounds (see the header): what a working pipeline gives here, with room for float drift. */
const BOUNDS = {
  /** The backdoor takes: no-defense ASR at least this, and at least 10 times the clean-image floor. */
  backdoorAsr: 60,
  /** Prompt tuning moves the model: VPT's ASR at least this many points below no defense's. */
  vptDrop: 10,
  /** The repelling works: RVPT's ASR at least this many points below VPT's (12.6-15.2 measured). */
  rvptBelowVpt: 5,
  /** RVPT costs at most this many points of CA (10.1-11.9 measured). */
  caCost: 20,
};

test('BadNet takes on the toy setting; VPT lowers its ASR, RVPT lowers it further, at a bounded CA cost', async () => {
  process.env.RVPT_CACHE = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-efficacy-'));
  const dataset = TOY.datasets.main;
  const bd = await ensureBackdoored(TOY, 'BadNet', { dataset, quiet: true });
  try {
    const nd = bd.metrics[dataset];
    const vpt = (await runCell(TOY, 'BadNet', 'VPT', dataset, [dataset], { backdoored: bd, quiet: true })).metrics[dataset]!;
    const rvpt = (await runCell(TOY, 'BadNet', 'RVPT', dataset, [dataset], { backdoored: bd, quiet: true })).metrics[dataset]!;
    const seen = { noDefense: [nd.asr, nd.ca, nd.cleanToTarget], vpt: [vpt.asr, vpt.ca], rvpt: [rvpt.asr, rvpt.ca] };
    // One object, so a failure shows every number at once.
    expect({
      seen,
      backdoorTakes: nd.asr >= BOUNDS.backdoorAsr && nd.asr >= 10 * nd.cleanToTarget!,
      vptBelowNoDefense: vpt.asr <= nd.asr - BOUNDS.vptDrop,
      rvptBelowVpt: rvpt.asr <= vpt.asr - BOUNDS.rvptBelowVpt,
      caBounded: rvpt.ca >= nd.ca - BOUNDS.caCost,
    }).toEqual({ seen, backdoorTakes: true, vptBelowNoDefense: true, rvptBelowVpt: true, caBounded: true });

    // A byte changed inside the cached RVPT cell (a digit of its ASR: still valid JSON) is caught on the next load,
    // said, and the cell computed again, to the same numbers.
    const file = cellFile(TOY, 'BadNet', 'RVPT', dataset, [dataset], bd.checkpoint);
    const text = fs.readFileSync(file, 'utf8');
    const at = text.indexOf('"asr": ') + 7;
    fs.writeFileSync(file, text.slice(0, at) + (text[at] === '9' ? '8' : '9') + text.slice(at + 1));
    const logs: string[] = [];
    const again = await runCell(TOY, 'BadNet', 'RVPT', dataset, [dataset], { backdoored: bd, quiet: true, log: (s) => logs.push(s) });
    expect(logs.join('\n')).toMatch(/cached cell .* is unusable \(.* changed since it was written \(sha256 [0-9a-f]{12}, recorded [0-9a-f]{12}\)\); computing it again/);
    expect(again.metrics[dataset]).toEqual(rvpt);
  } finally {
    bd.model.dispose();
  }
});
