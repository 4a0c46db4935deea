/** The `rvpt` command line: pretrain, eval, bench. Every command takes --profile, --seed and --backend. */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { initBackend } from './backend';
import { PROFILES, getProfile } from './experiments/profiles';
import { cleanAccuracy, ensurePretrained } from './experiments/pretrainRun';
import { benchTrainStep } from './experiments/bench';
import { loadCheckpoint } from './checkpoint/checkpoint';
import { provenance } from './util/provenance';
import { ATTACKS, makeTrigger } from './attacks/registry';
import { ensureBackdoored } from './experiments/backdoorRun';

function int(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('It must be a non-negative integer.');
  return n;
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
    .option('--force', 'train again even when a cached checkpoint exists')
    .option('--json', 'print the result as one JSON line')
    .action(async (o) => {
      const profile = getProfile(o.profile);
      makeTrigger(o.attack); // fail fast on an unknown attack, before any training
      await initBackend(o.backend);
      const r = await ensureBackdoored(profile, o.attack, { force: o.force });
      const out = { checkpoint: r.checkpoint, attack: o.attack, metrics: r.metrics, poisoned: r.poisoned, cached: r.cached, trainSeconds: r.history.seconds, provenance: provenance() };
      console.log(o.json ? JSON.stringify(out) : JSON.stringify(out, null, 2));
      r.model.dispose();
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
