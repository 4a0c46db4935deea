/**
 * The defense registry (BackdoorBench style): adding a defense is one file exporting a `Defense`, one line here and a
 * test. Names are the paper's.
 */
import { Defense } from './defense';
import { NoDefense } from './noDefense';
import { CleanCLIP } from './cleanclip';
import { LinearProbe } from './linearProbe';
import { VPT } from './vpt';
import { RVPT } from './rvpt';

export const DEFENSES: Record<string, Defense> = {
  'No defense': NoDefense,
  CleanCLIP,
  'Linear Probe': LinearProbe,
  VPT,
  RVPT,
};

export function getDefense(name: string): Defense {
  const d = DEFENSES[name];
  if (!d) throw new Error(`Unknown defense '${name}'. Registered defenses: ${Object.keys(DEFENSES).join(', ')}.`);
  return d;
}
