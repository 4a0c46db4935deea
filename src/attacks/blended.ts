/**
 * Blended (CleanCLIP's 'blended'): 0.8 * image + 0.2 * uniform noise, the noise fresh for every image, clipped
 * to [0, 1].
 */
import { Trigger, pixelTrigger } from './trigger';
import { makeRng } from '../util/rng';

export interface BlendedConfig {
  ratio: number;
}

export const BLENDED_DEFAULTS: BlendedConfig = { ratio: 0.2 };

export function blended(config: Partial<BlendedConfig> = {}): Trigger {
  const c = { ...BLENDED_DEFAULTS, ...config };
  return pixelTrigger('Blended', c, (px, index, _s, ctx) => {
    const rng = makeRng(`blended-${ctx.seed}-${index}`);
    for (let i = 0; i < px.length; i++) px[i] = (1 - c.ratio) * px[i] + c.ratio * rng();
  });
}
