/** The `rvpt` command line: pretrain, eval, backdoor, tables, bench. Every command takes --profile, --seed and --backend. */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { initBackend } from './backend';
import { PROFILES, getProfile } from './experiments/profiles';
import { cleanAccuracy, ensurePretrained } from './experiments/pretrainRun';
import { benchTrainStep } from './experiments/bench';
import { loadCheckpoint } from './checkpoint/checkpoint';
import { provenance } from './util/provenance';
import { ATTACKS, makeTrigger } from './attacks/registry';
import { ensureBackdoored } from './experiments/backdoorRun';
import { runNoDefense } from './experiments/noDefense';
import { costTable, paperTableSpecs, runTable } from './experiments/paperTables';

function int(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('It must be a non-negative integer.');
  return n;
}

function rate(v: string): number {
  const n = Number(v);
  if (!(n > 0 && n < 1)) throw new InvalidArgumentError('It must be a number in (0, 1), e.g. 0.003 for 0.3%.');
  return n;
}

/** `key=value` pairs to a config object; numbers and booleans are parsed, anything else stays a string. */
export function parseKeyValues(pairs: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const p of pairs) {
    const i = p.indexOf('=');
    if (i <= 0) throw new InvalidArgumentError(`'${p}' is not key=value (e.g. patch=6).`);
    const v = p.slice(i + 1);
    out[p.slice(0, i)] = v === 'true' ? true : v === 'false' ? false : v !== '' && !Number.isNaN(Number(v)) ? Number(v) : v;
  }
  return out;
}

export function buildCli(): Command {
  const program = new Command('rvpt')
    .description('RVPT at laptop scale: pre-train MiniCLIP, backdoor it, defend it, measure it.')
    .showHelpAfterError('(run `rvpt --help` for usage)')
    .showSuggestionAfterError(true)
    // Set before adding sub-commands, which copy it: errors come back here instead of exiting the process.
    .exitOverride();

  const common = (c: Command) =>
    c
      .option('-p, --profile <name>', `profile: ${Object.keys(PROFILES).join(' | ')}`, 'small')
      .option('--seed <n>', 'random seed', int)
      .option('--backend <name>', 'force a TF.js backend: tensorflow | wasm | cpu (default: best available; env RVPT_BACKEND)');

  common(program.command('pretrain').description('contrastive pre-training of a clean MiniCLIP; prints zero-shot CA'))
    .option('--steps <n>', 'override the profile number of steps', int)
    .option('--workers <n>', 'threads computing gradients: 1, or 2 to use a second core (default: the profile)', int)
    .option('--force', 'train again even when a cached checkpoint exists')
    .option('--json', 'print the result as one JSON line')
    .action(async (o) => {
      const profile = getProfile(o.profile);
      await initBackend(o.backend);
      const r = await ensurePretrained(o.workers ? { ...profile, pretrain: { ...profile.pretrain, workers: o.workers } } : profile, { seed: o.seed, steps: o.steps, force: o.force });
      const out = { checkpoint: r.checkpoint, ca: r.ca, cached: r.cached, trainSeconds: r.history.seconds, finalLoss: r.history.loss.at(-1), provenance: provenance() };
      console.log(o.json ? JSON.stringify(out) : JSON.stringify(out, null, 2));
      r.model.dispose();
    });

  common(program.command('eval').description('zero-shot clean accuracy of a checkpoint (default: the profile pre-trained model)'))
    .option('-c, --checkpoint <file>', 'a .safetensors checkpoint written by rvpt')
    .option('--json', 'print the result as one JSON line')
    .action(async (o) => {
      const profile = getProfile(o.profile);
      await initBackend(o.backend);
      const ck = o.checkpoint ? loadCheckpoint(o.checkpoint, profile.model) : await ensurePretrained(profile, { seed: o.seed });
      const ca = await cleanAccuracy(ck.model, ck.tokenizer, profile);
      const out = { checkpoint: o.checkpoint ?? (ck as { checkpoint: string }).checkpoint, ca, provenance: provenance() };
      console.log(o.json ? JSON.stringify(out) : JSON.stringify(out, null, 2));
      ck.model.dispose();
    });

  common(program.command('backdoor').description('poison the corpus with one attack and fine-tune the clean model; prints ASR and CA'))
    .requiredOption('-a, --attack <name>', `attack: ${Object.keys(ATTACKS).join(' | ')}`)
    .option('-d, --dataset <name>', 'the poisoned dataset (default: the profile main dataset)')
    .option('--rate <x>', 'poisoning rate (share of pre-training pairs), overrides the profile', rate)
    .option('--emoji-rate <x>', 'poisoning rate of the emoji pre-training set, overrides the profile', rate)
    .option('--emoji-repeat <n>', 'repeats of the emoji set in the poisoned corpus, overrides the profile', int)
    .option('--steps <n>', 'fine-tuning steps, overrides the profile', int)
    .option('--lr <x>', 'peak learning rate, overrides the profile', Number)
    .option('-t, --trigger <key=value...>', 'trigger parameters, e.g. -t patch=6 noise=fixed')
    .option('--force', 'train again even when a cached checkpoint exists')
    .option('--json', 'print the result as one JSON line')
    .action(async (o) => {
      const profile = getProfile(o.profile);
      const triggerConfig = parseKeyValues(o.trigger ?? []);
      makeTrigger(o.attack, triggerConfig); // fail fast on an unknown attack or bad parameter, before any training
      await initBackend(o.backend);
      const backdoor = Object.fromEntries(
        Object.entries({ rate: o.rate, emojiRate: o.emojiRate, emojiRepeat: o.emojiRepeat, steps: o.steps, lr: o.lr }).filter(([, v]) => v !== undefined),
      );
      const r = await ensureBackdoored(profile, o.attack, { force: o.force, triggerConfig, backdoor, dataset: o.dataset });
      const out = { checkpoint: r.checkpoint, attack: o.attack, metrics: r.metrics, poisoned: r.poisoned, cached: r.cached, trainSeconds: r.history.seconds, provenance: provenance() };
      console.log(o.json ? JSON.stringify(out) : JSON.stringify(out, null, 2));
      r.model.dispose();
    });

  common(program.command('tables').description("backdoor, defend and measure: writes the no-defense table, the paper's Tables 1-3 and the cost table"))
    .option('--only <names>', 'comma-separated subset: no-defense, table1, table2, table3, cost')
    .action(async (o) => {
      const profile = getProfile(o.profile);
      const specs = paperTableSpecs(profile);
      const all = ['no-defense', ...specs.map((s) => s.name), 'cost'];
      const only: string[] = o.only ? String(o.only).split(',') : all;
      const bad = only.filter((n) => !all.includes(n));
      if (bad.length) throw new Error(`Unknown table(s) ${bad.join(', ')}; use ${all.join(', ')}.`);
      await initBackend(o.backend);
      if (only.includes('no-defense')) console.log(`no-defense: ${(await runNoDefense(profile)).path}`);
      for (const spec of specs) {
        if (!only.includes(spec.name) && !(spec.name === 'table1' && only.includes('cost'))) continue;
        const r = await runTable(profile, spec, { write: only.includes(spec.name) });
        if (r.path) console.log(`${spec.name}: ${r.path}`);
        if (spec.name === 'table1' && only.includes('cost')) costTable(profile, r.cells);
      }
    });

  common(program.command('bench').description('time one full contrastive training step and the plain 1024^3 matmul'))
    .option('--steps <n>', 'timed steps (after one warm-up step)', int, 5)
    .option('--batch <n>', 'override the profile benchmark batch', int)
    .option('--workers <n>', 'threads computing gradients: 1, or 2 to use a second core', int, 1)
    .option('--json', 'end with one JSON line')
    .action(async (o) => {
      const profile = getProfile(o.profile);
      const b = await initBackend(o.backend);
      const r = await benchTrainStep(profile.model, o.batch ?? profile.benchBatch, o.steps, b.name, (s) => process.stderr.write(`[bench] ${s}\n`), o.workers);
      if (o.json) console.log(JSON.stringify(r));
      else {
        console.log(`backend ${r.backend}, profile ${profile.name}, batch ${r.config.batch}, workers ${r.workers}`);
        console.log(`step: median ${r.msPerStep.median.toFixed(0)} ms (min ${r.msPerStep.min.toFixed(0)}, max ${r.msPerStep.max.toFixed(0)}), ${r.stepGflop.toFixed(2)} GFLOP`);
        console.log(`training ${r.gflops.toFixed(2)} GFLOP/s; plain matmul ${r.matmulGflops.toFixed(2)} GFLOP/s; efficiency ${r.efficiency.toFixed(3)}`);
      }
    });
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildCli();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.exitCode === 0 ? 0 : 2;
    process.stderr.write(`rvpt: ${(e as Error).message}\n`);
    return 1;
  }
}
