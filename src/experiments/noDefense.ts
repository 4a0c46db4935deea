/**
 * The "No defense" table: every attack's backdoored model, CA and ASR on the dataset it was poisoned for
 * (figures/table-no-defense.*). Backdoored models come from the cache when they exist.
 */
import { ATTACK_NAMES } from '../attacks/registry';
import { BackdoorResult, cleanFinetuneCA, ensureBackdoored } from './backdoorRun';
import { externalWeights } from './externalWeights';
import { Profile } from './profiles';
import { availableAttacks } from './paperTables';
import { Cell, ResultsTable, TableData, tableProvenance, writeTable } from './tables';

/**
 * Which attacks each dataset gets: all six on the main dataset (Table 1); on emoji, Table 2's three and BadCLIP
 * (Table 3). At paper scale, those with a checkpoint in the weights file (availableAttacks).
 */
export function noDefenseSpec(profile: Profile): Record<string, string[]> {
  const spec: Record<string, string[]> = {
    [profile.datasets.main]: availableAttacks(profile, profile.datasets.main, ATTACK_NAMES),
    [profile.datasets.emoji]: availableAttacks(profile, profile.datasets.emoji, ['BadNet', 'Blended', 'WaNet', 'BadCLIP']),
  };
  // Paper scale: OxfordPets beside Caltech101 (Table 2), with the attacks that have a checkpoint.
  for (const d of profile.datasets.more ?? []) spec[d] = availableAttacks(profile, d, ['BadNet', 'Blended', 'WaNet']);
  return Object.fromEntries(Object.entries(spec).filter(([, a]) => a.length));
}

export async function runNoDefense(
  profile: Profile,
  opts: { spec?: Record<string, string[]>; log?: (s: string) => void; write?: boolean } = {},
): Promise<{ table: ResultsTable; path?: string; runs: Record<string, Record<string, Omit<BackdoorResult, 'model'>>> }> {
  const t0 = Date.now();
  const spec = opts.spec ?? noDefenseSpec(profile);
  const datasets: TableData = {};
  const runs: Record<string, Record<string, Omit<BackdoorResult, 'model'>>> = {};
  const configs: Record<string, unknown> = {};
  for (const [dataset, attacks] of Object.entries(spec)) {
    // Beside the clean model's CA, the CA of the same fine-tune without poison (not at paper scale: nothing is tuned).
    const control = externalWeights(profile) ? null : await cleanFinetuneCA(profile, dataset, opts.log);
    for (const attack of attacks) {
      const { model, ...r } = await ensureBackdoored(profile, attack, { log: opts.log, dataset });
      model.dispose();
      (runs[dataset] ??= {})[attack] = r;
      configs[`${dataset}/${attack}`] = { trigger: r.trigger.config, poisoned: r.poisoned[dataset], trainSeconds: r.history.seconds, checkpoint: r.checkpoint };
      const m = r.metrics[dataset];
      const cell: Cell = { asr: m.asr, ca: m.ca, asrAll: m.asrAll, poisonedAccuracy: m.poisonedAccuracy, n: m.n, cleanCA: r.cleanCA[dataset], ...(control ? { cleanFinetuneCA: control.ca[dataset] } : {}), poisonedPairs: r.poisoned[dataset], trainSeconds: r.history.seconds };
      ((datasets[dataset] ??= {})['No defense'] ??= {})[attack] = cell;
    }
  }
  const table: ResultsTable = {
    table: 'no-defense',
    datasets,
    provenance: tableProvenance(profile, { model: profile.model, backdoor: profile.backdoor, runs: configs }, profile.backdoor.seed, (Date.now() - t0) / 1000),
  };
  // The CAs a backdoored model is compared with, and each fine-tune's time (the budget is at most 5 minutes).
  const facts = Object.entries(datasets).map(([ds, m]) => {
    const cells = Object.entries(m['No defense']);
    const c0 = cells[0][1];
    const secs = cells.map(([, c]) => c.trainSeconds as number).filter((x) => x > 0);
    const times = secs.length ? `; fine-tunes ${Math.min(...secs).toFixed(0)}-${Math.max(...secs).toFixed(0)} s` : '';
    const control = c0.cleanFinetuneCA === undefined ? '' : `, the same fine-tune without poison ${(c0.cleanFinetuneCA as number).toFixed(2)}%`;
    return `- ${ds}: clean model CA ${(c0.cleanCA as number).toFixed(2)}%${control}${times}.`;
  });
  const extra = `\nCompare each CA with:\n\n${facts.join('\n')}\n`;
  const path = opts.write === false ? undefined : writeTable(profile, 'table-no-defense', table, `No defense: backdoored MiniCLIP (profile ${profile.name})`, extra);
  return { table, path, runs };
}
