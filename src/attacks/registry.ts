/**
 * The attack registry (BackdoorBench style): adding an attack is one file exporting a trigger factory, plus one
 * line here and a test. Names are the paper's.
 */
import { Trigger } from './trigger';
import { badnet } from './badnet';
import { blended } from './blended';
import { wanet } from './wanet';

export type TriggerFactory = (config?: Record<string, unknown>) => Trigger;

export const ATTACKS: Record<string, TriggerFactory> = {
  BadNet: badnet,
  Blended: blended,
  WaNet: wanet,
};

export function makeTrigger(name: string, config: Record<string, unknown> = {}): Trigger {
  const f = ATTACKS[name];
  if (!f) throw new Error(`Unknown attack '${name}'. Registered attacks: ${Object.keys(ATTACKS).join(', ')}.`);
  return f(config);
}
