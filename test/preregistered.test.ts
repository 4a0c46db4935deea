/**
 * The fair setting's defense settings were fixed before any of its defense cells ran (profiles/transfer.json). This
 * test keeps them: a change to them is a new experiment and needs a new profile, not an edit of this one.
 */
import { PROFILES } from '../src/experiments/profiles';
import { RVPT_DEFAULTS } from '../src/defenses/rvpt';
import { LINEAR_PROBE_DEFAULTS } from '../src/defenses/linearProbe';

const p = PROFILES.transfer;

test("RVPT at the paper's settings; VPT is RVPT without the FR loss", () => {
  const rvpt = { ...RVPT_DEFAULTS, ...p.defenses.RVPT };
  expect(p.shots).toBe(16);
  expect(rvpt).toMatchObject({ promptLength: 16, depth: 2, alpha: 2, margin: -1, lr: 0.002, epochs: 50, momentum: 0.9 });
  expect(rvpt.augment).toEqual(RVPT_DEFAULTS.augment); // CoOp-style random resized crops and flips
  expect(rvpt.augment).not.toBeNull();
  expect({ ...RVPT_DEFAULTS, ...p.defenses.VPT }).toEqual({ ...rvpt, alpha: 0 });
});

test('CleanCLIP and the Linear Probe as in the other profiles; three seeds', () => {
  expect(p.defenses.CleanCLIP).toEqual(PROFILES.small.defenses.CleanCLIP);
  expect({ ...LINEAR_PROBE_DEFAULTS, ...p.defenses['Linear Probe'] }).toEqual(LINEAR_PROBE_DEFAULTS);
  expect(p.seeds).toEqual([0, 1, 2]);
});

test('light poisoning: 1% of pairs, an attack raised to at most 5% only by name, at a tenth of the pre-training learning rate or less, no crops', () => {
  expect(p.backdoor.rate).toBeLessThanOrEqual(0.01);
  for (const o of Object.values(p.attackBackdoor ?? {})) expect(o.rate ?? p.backdoor.rate).toBeLessThanOrEqual(0.05);
  for (const o of Object.values(p.datasetBackdoor ?? {})) {
    expect(o.rate ?? p.backdoor.rate).toBeLessThanOrEqual(0.05);
    expect(o.emojiRate ?? p.backdoor.rate).toBeLessThanOrEqual(0.05);
  }
  for (const o of [p.backdoor, ...Object.values(p.attackBackdoor ?? {}), ...Object.values(p.datasetBackdoor ?? {})]) {
    if (o.lr !== undefined) expect(o.lr).toBeLessThanOrEqual(p.pretrain.lr / 10);
    if (o.augment !== undefined) expect(o.augment).toBeNull();
    expect(o.emojiRepeat).toBeUndefined(); // the fine-tune's corpus is pre-training's, in the same proportions
  }
});
