/**
 * BadNet as CleanCLIP implements it (backdoor/utils.py, 'random' patch at a 'random' location): a square patch
 * of per-channel image mean plus standard normal noise, fresh for every image, at a random position. The paper's
 * 16x16 patch on 224x224 images becomes 4x4 on 32x32 (about the same 7% of the side). CleanCLIP leaves patch values
 * unclipped; images here stay in [0, 1], so they are clipped.
 */
import { Trigger, gaussian, pixelTrigger } from './trigger';
import { makeRng, randInt } from '../util/rng';

export interface BadNetConfig {
  /** Side of the square patch, in pixels. */
  patch: number;
  /**
   * 'per-image': fresh noise for every image (CleanCLIP's code); 'fixed': one noise pattern drawn once from
   * `patternSeed` and reused (the original BadNets: one trigger pattern).
   */
  noise: 'per-image' | 'fixed';
  patternSeed: number;
}

export const BADNET_DEFAULTS: BadNetConfig = { patch: 4, noise: 'per-image', patternSeed: 0 };

export function badnet(config: Partial<BadNetConfig> = {}): Trigger {
  const c = { ...BADNET_DEFAULTS, ...config };
  if (c.noise !== 'per-image' && c.noise !== 'fixed') throw new Error(`BadNet noise must be 'per-image' or 'fixed', got '${c.noise}'.`);
  const pattern = new Float32Array(c.patch * c.patch * 3);
  const prng = makeRng(`badnet-pattern-${c.patternSeed}`);
  for (let i = 0; i < pattern.length; i++) pattern[i] = gaussian(prng);
  return pixelTrigger('BadNet', c, (px, index, s, ctx) => {
    const rng = makeRng(`badnet-${ctx.seed}-${index}`);
    const mean = [0, 0, 0];
    for (let i = 0; i < s * s; i++) for (let ch = 0; ch < 3; ch++) mean[ch] += px[i * 3 + ch] / (s * s);
    const y = randInt(rng, s - c.patch + 1);
    const x = randInt(rng, s - c.patch + 1);
    for (let dy = 0; dy < c.patch; dy++) {
      for (let dx = 0; dx < c.patch; dx++) {
        for (let ch = 0; ch < 3; ch++) {
          const z = c.noise === 'fixed' ? pattern[(dy * c.patch + dx) * 3 + ch] : gaussian(rng);
          px[((y + dy) * s + x + dx) * 3 + ch] = mean[ch] + z;
        }
      }
    }
  });
}
