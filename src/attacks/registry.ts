/**
 * The attack registry (BackdoorBench style): adding an attack is one file exporting a trigger factory, plus one
 * line here and a test. Names are the paper's.
 */
import { Trigger } from './trigger';
import { badnet } from './badnet';
import { blended } from './blended';
import { wanet } from './wanet';
import { issba } from './issba';
import { trojvqa } from './trojvqa';
import { badclip } from './badclip';

export type TriggerFactory = (config?: Record<string, unknown>) => Trigger;

export const ATTACKS: Record<string, TriggerFactory> = {
  BadNet: badnet,
  Blended: blended,
  ISSBA: issba,
  WaNet: wanet,
  TrojVQA: trojvqa,
  BadCLIP: badclip,
};

/** The paper's column order. */
export const ATTACK_NAMES = ['BadNet', 'Blended', 'ISSBA', 'WaNet', 'TrojVQA', 'BadCLIP'];

export function makeTrigger(name: string, config: Record<string, unknown> = {}): Trigger {
  const f = ATTACKS[name];
  if (!f) throw new Error(`Unknown attack '${name}'. Registered attacks: ${Object.keys(ATTACKS).join(', ')}.`);
  const known = Object.keys(f().config);
  const unknown = Object.keys(config).filter((k) => !known.includes(k));
  if (unknown.length) throw new Error(`${name}: unknown trigger parameter(s) ${unknown.join(', ')}; known: ${known.join(', ')}.`);
  return f(config);
}
