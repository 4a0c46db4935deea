/**
 * The `rvpt` command line: pretrain, eval, backdoor, defend, tables, figures, report, clip, bench.
 * Every command takes --profile, --seed and --backend. The research probes have their own command, `rvpt-lab`
 * (research/cli.ts), which builds on this library and is never imported by it.
 */
import { Command, InvalidArgumentError } from 'commander';
import { initBackend } from './backend';
import { getProfile } from './experiments/profiles';
import { checkAttack, commonOptions, datasetOption, int, newProgram, positiveNumber, rate, runProgram, withJobs } from './cliOptions';
import { cleanAccuracy, ensurePretrained } from './experiments/pretrainRun';
import { BenchResult, benchClipScale, benchTrainStep, compareWorkers } from './experiments/bench';
import { STEP_PHASES } from './train/parallel';
import { spawnSync } from 'child_process';
import { loadCheckpoint } from './checkpoint/checkpoint';
import { provenance } from './util/provenance';
import * as fs from 'fs';
import * as path from 'path';
import { projectRoot, readJsonFile, writeJsonAtomic } from './util/fsutil';
import { resultsDir } from './experiments/tables';
import { ATTACKS } from './attacks/registry';
import { ensureBackdoored } from './experiments/backdoorRun';
import { noDefenseSpec, runNoDefense } from './experiments/noDefense';
import { costTable, paperTableSpecs, runTable, tableJobs } from './experiments/paperTables';
import { runCellsInParallel } from './experiments/cellPool';
import { runCell } from './experiments/defenseRun';
import { DEFENSES } from './defenses/registry';
import { loadClipWeights } from './checkpoint/clipWeights';
import { ClipTokenizer } from './model/clipTokenizer';
import { decodeImage } from './data/imageFolder';
import { zeroShotClassifier } from './model/zeroShot';
import { l2normalize, matMulBT } from './model/layers';
import * as tf from '@tensorflow/tfjs-core';
import { figureAblations, figureAttention, figureEmbeddings, figurePR } from './experiments/analysis';
import { writeReproductionReport } from './experiments/report';
import { writeSlides } from './experiments/slides';
import { checkPreconditions, preconditionsMarkdown, writePreconditions } from './experiments/preconditions';

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
  const program = newProgram('rvpt', 'RVPT at laptop scale: pre-train MiniCLIP, backdoor it, defend it, measure it.');

  const common = commonOptions;

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
      // The profile's own model (not a variant): its record goes beside the tables (figures/ for the headline profile), where
      // notebook 00 and the report read it, so that it cannot lag behind the checkpoint the tables were made from.
      const sidecar = r.checkpoint.replace(/\.safetensors$/, '.json');
      if (o.steps === undefined && o.seed === undefined && o.workers === undefined && fs.existsSync(sidecar)) {
        writeJsonAtomic(path.join(resultsDir(profile), `pretrain-${profile.name}.json`), { ...readJsonFile<object>(sidecar, 'Checkpoint sidecar'), file: path.basename(r.checkpoint) });
      }
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
    .option('--lr <x>', 'peak learning rate, overrides the profile', positiveNumber)
    .option('-t, --trigger <key=value...>', 'trigger parameters, e.g. -t patch=6 noise=fixed')
    .option('--force', 'train again even when a cached checkpoint exists')
    .option('--json', 'print the result as one JSON line')
    .action(async (o) => {
      const profile = getProfile(o.profile);
      const triggerConfig = parseKeyValues(o.trigger ?? []);
      checkAttack(o.attack, triggerConfig); // fail fast on an unknown attack or bad parameter, before any training
      if (o.dataset !== undefined) datasetOption(o.dataset, profile);
      await initBackend(o.backend);
      const backdoor = Object.fromEntries(
        Object.entries({ rate: o.rate, emojiRate: o.emojiRate, emojiRepeat: o.emojiRepeat, steps: o.steps, lr: o.lr }).filter(([, v]) => v !== undefined),
      );
      const r = await ensureBackdoored(profile, o.attack, { force: o.force, triggerConfig, backdoor, dataset: o.dataset });
      const out = { checkpoint: r.checkpoint, attack: o.attack, metrics: r.metrics, poisoned: r.poisoned, cached: r.cached, trainSeconds: r.history.seconds, provenance: provenance() };
      console.log(o.json ? JSON.stringify(out) : JSON.stringify(out, null, 2));
      r.model.dispose();
    });

  common(program.command('defend').description('run one defense on one backdoored model and measure ASR and CA (cached like the tables)'))
    .requiredOption('-a, --attack <name>', `attack: ${Object.keys(ATTACKS).join(' | ')}`)
    .requiredOption('-m, --method <name>', `defense: ${Object.keys(DEFENSES).join(' | ')}`)
    .option('-d, --dataset <name>', 'dataset to tune on and test (default: the profile main dataset)')
    .option('--force', 'run again even when the cell is cached')
    .option('--json', 'print the result as one JSON line')
    .action(async (o) => {
      const profile = getProfile(o.profile);
      checkAttack(o.attack, profile.triggers?.[o.attack] ?? {});
      if (!DEFENSES[o.method]) throw new InvalidArgumentError(`Unknown defense '${o.method}'. Registered defenses: ${Object.keys(DEFENSES).join(', ')}.`);
      await initBackend(o.backend);
      const dataset = datasetOption(o.dataset, profile);
      const bd = await ensureBackdoored(profile, o.attack, { dataset });
      try {
        const cell = await runCell(profile, o.attack, o.method, dataset, [dataset], { backdoored: bd, force: o.force });
        const out = { attack: o.attack, method: o.method, dataset, noDefense: bd.metrics[dataset], defended: cell.metrics[dataset], cost: cell.cost, checkpoint: bd.checkpoint, provenance: provenance() };
        console.log(o.json ? JSON.stringify(out) : JSON.stringify(out, null, 2));
      } finally {
        bd.model.dispose();
      }
    });

  common(program.command('figures').description('the analysis figures: PR across layers, attention maps, t-SNE/UMAP, ablations (HTML, PNG, JSON)'))
    .option('--only <names>', 'comma-separated subset: pr, attention, embeddings, ablations')
    .option('--attacks <names>', 'attacks for PR and attention (default BadNet,BadCLIP); embeddings use the first (default BadCLIP)')
    .option('--jobs <n>', 'processes computing the ablation runs side by side (default: the profile, small 2)', int)
    .action(async (o) => {
      const profile = withJobs(getProfile(o.profile), o.jobs);
      const attacks: string[] | undefined = o.attacks ? String(o.attacks).split(',') : undefined;
      for (const a of attacks ?? []) checkAttack(a, profile.triggers?.[a] ?? {}); // unknown names fail before any work
      const all = ['pr', 'attention', 'embeddings', 'ablations'];
      const only: string[] = o.only ? String(o.only).split(',') : all;
      const bad = only.filter((n) => !all.includes(n));
      if (bad.length) throw new InvalidArgumentError(`Unknown figure(s) ${bad.join(', ')}; use ${all.join(', ')}.`);
      await initBackend(o.backend);
      if (only.includes('pr')) console.log(`fig4-pr: ${(await figurePR(profile, attacks)).saved.png}`);
      if (only.includes('attention')) console.log(`fig6-attention: ${(await figureAttention(profile, attacks)).saved.png}`);
      if (only.includes('embeddings')) {
        const e = await figureEmbeddings(profile, attacks?.[0]);
        console.log(`fig7: ${e.saved.tsne.png}, ${e.saved.umap.png}`);
      }
      if (only.includes('ablations')) console.log(`ablations: ${(await figureAblations(profile)).saved.png}`);
    });

  common(program.command('slides').description('one slide-ready PNG (1280 x 720) per claim of the paper, from the result files, in RESULTS/slides/'))
    .action(async (o) => {
      for (const f of await writeSlides(getProfile(o.profile))) console.log(f);
    });

  common(program.command('report').description("REPRODUCTION.md: the paper's numbers beside ours, with a verdict per claim, from the result files"))
    .action(async (o) => {
      console.log(writeReproductionReport(getProfile(o.profile)));
    });

  common(program.command('clip').description("zero-shot classify images with a real CLIP checkpoint (safetensors) and CLIP's tokenizer"))
    .requiredOption('-w, --weights <file>', 'CLIP weights, OpenAI or Hugging Face naming (.safetensors)')
    .requiredOption('-t, --tokenizer <file>', 'tokenizer.json, vocab.json (merges.txt beside it), bpe_simple_vocab_16e6.txt.gz, or their folder')
    .requiredOption('-c, --classes <names>', "comma-separated class names, e.g. 'banana,accordion,samoyed'")
    .option('--template <text>', "prompt template with {} for the class", 'a photo of a {}.')
    .option('--json', 'print the result as one JSON line')
    .argument('<images...>', 'image files')
    .action(async (images: string[], o) => {
      // The options first: a usage error must not wait for a 600 MB checkpoint to load.
      const classes = String(o.classes).split(',').map((s) => s.trim()).filter(Boolean);
      if (classes.length < 2) throw new InvalidArgumentError(`--classes '${o.classes}' names ${classes.length} class; give at least two, comma-separated, e.g. 'cat,dog'.`);
      if (!String(o.template).includes('{}')) throw new InvalidArgumentError(`--template '${o.template}' has no '{}' where the class name goes, e.g. 'a photo of a {}.'.`);
      await initBackend(o.backend);
      const { model, naming, unused } = loadClipWeights(o.weights);
      const tokenizer = ClipTokenizer.load(o.tokenizer);
      const s = model.config.imageSize;
      const pixels = new Float32Array(images.length * s * s * 3);
      for (let i = 0; i < images.length; i++) pixels.set(await decodeImage(images[i], s), i * s * s * 3);
      const probs = tf.tidy(() => {
        const text = zeroShotClassifier(model, tokenizer, classes, [o.template]);
        const emb = model.encodeImage(tf.tensor4d(pixels, [images.length, s, s, 3])).embedding;
        return tf.softmax(tf.mul(matMulBT(l2normalize(emb), text), model.logitScale())).arraySync() as number[][];
      });
      const out = {
        weights: o.weights,
        naming,
        config: model.config,
        params: model.numParams(),
        unusedTensors: unused,
        predictions: images.map((f, i) => ({ image: f, top: classes[probs[i].indexOf(Math.max(...probs[i]))], probs: Object.fromEntries(classes.map((c, j) => [c, Number(probs[i][j].toFixed(4))])) })),
      };
      console.log(o.json ? JSON.stringify(out) : JSON.stringify(out, null, 2));
      model.dispose();
    });

  common(program.command('tables').description("backdoor, defend and measure: writes the no-defense table, the paper's Tables 1-3 and the cost table"))
    .option('--only <names>', 'comma-separated subset: no-defense, table1, table2, table3, cost')
    .option('--jobs <n>', 'processes training side by side: backdoor fine-tunes, controls, defense cells (default: the profile, small 2)', int)
    .action(async (o) => {
      const profile = withJobs(getProfile(o.profile), o.jobs);
      const specs = paperTableSpecs(profile);
      const all = ['no-defense', ...specs.map((s) => s.name), 'cost'];
      const only: string[] = o.only ? String(o.only).split(',') : all;
      const bad = only.filter((n) => !all.includes(n));
      if (bad.length) throw new InvalidArgumentError(`Unknown table(s) ${bad.join(', ')}; use ${all.join(', ')}.`);
      await initBackend(o.backend);
      const chosen = specs.filter((s) => only.includes(s.name) || (s.name === 'table1' && only.includes('cost')));
      // Every backdoor fine-tune, control and defense cell first, side by side when the profile has two jobs.
      const noDefense = only.includes('no-defense') ? Object.entries(noDefenseSpec(profile)) : [];
      await runCellsInParallel(chosen.flatMap((s) => tableJobs(profile, s)), profile.jobs ?? 1, (s) => process.stderr.write(`[rvpt] ${s}\n`), {
        backdoors: noDefense.flatMap(([dataset, attacks]) => attacks.map((attack) => ({ profile, attack, dataset }))),
        controls: noDefense.map(([dataset]) => ({ profile, dataset })),
      });
      if (only.includes('no-defense')) console.log(`no-defense: ${(await runNoDefense(profile)).path}`);
      for (const spec of specs) {
        if (!only.includes(spec.name) && !(spec.name === 'table1' && only.includes('cost'))) continue;
        const r = await runTable(profile, spec, { write: only.includes(spec.name) });
        if (r.path) console.log(`${spec.name}: ${r.path}`);
        if (spec.name === 'table1' && only.includes('cost')) costTable(profile, r.cells);
      }
    });

  common(program.command('preconditions').description("measure the paper's preconditions (P1 transfer, P2 PR, P3 light poisoning) before any defense; writes preconditions.json"))
    .option('--jobs <n>', 'processes side by side for the backdoor fine-tunes (default: the profile)', int)
    .action(async (o) => {
      const profile = withJobs(getProfile(o.profile), o.jobs);
      await initBackend(o.backend);
      const t0 = Date.now();
      const log = (s: string) => process.stderr.write(`[rvpt] ${s}\n`);
      // The tables' backdoors, side by side, first (the measurement then finds them cached).
      const spec = noDefenseSpec(profile);
      await runCellsInParallel([], profile.jobs ?? 1, log, { backdoors: Object.entries(spec).flatMap(([dataset, attacks]) => attacks.map((attack) => ({ profile, attack, dataset }))), controls: [] });
      const p = await checkPreconditions(profile, log);
      console.log(preconditionsMarkdown(p).join('\n'));
      console.log(`preconditions: ${writePreconditions(profile, p, (Date.now() - t0) / 1000)}`);
    });

  common(program.command('bench').description('time one full contrastive training step and the plain 1024^3 matmul'))
    .option('--steps <n>', 'timed steps (after the warm-up)', int, 5)
    .option('--warmup <n>', "untimed steps first: kernel set-up, then V8 compiling TF.js's JavaScript, which with two workers takes both cores' time for ~100 steps", int, 100)
    .option('--batch <n>', 'override the profile benchmark batch', int)
    .option('--workers <n>', 'threads computing gradients: 1, or 2 to use a second core', int, 1)
    .option('--rounds <n>', 'instead: one core against two, in n alternating rounds (paired ratios and their medians)', int)
    .option('--clip-scale', "instead: image-encoder forward and RVPT step of a random model of the profile's size (use -p paper for ViT-B/32)")
    .option('--json', 'end with one JSON line')
    .action(async (o) => {
      const profile = getProfile(o.profile);
      const b = await initBackend(o.backend);
      if (o.clipScale) {
        const r = benchClipScale(profile.model, o.batch ?? 8, o.steps, b.name, undefined, (s) => process.stderr.write(`[bench] ${s}\n`));
        if (o.json) console.log(JSON.stringify({ ...r, provenance: provenance() }));
        else {
          console.log(`backend ${r.backend}, profile ${profile.name} (${(r.params / 1e6).toFixed(1)}M parameters), batch ${r.batch}`);
          console.log(`image encoder forward: ${r.forward.imagesPerSecond.toFixed(2)} images/s (median ${r.forward.msPerBatch.toFixed(0)} ms per batch)`);
          console.log(`RVPT step (b=${r.promptLength}, D=${r.depth}): ${r.rvptStep.imagesPerSecond.toFixed(2)} images/s (median ${r.rvptStep.msPerBatch.toFixed(0)} ms per batch)`);
        }
        return;
      }
      if (o.rounds !== undefined) {
        // Each run in a fresh process (see compareWorkers), with this command's options.
        const run = async (workers: 1 | 2): Promise<BenchResult> => {
          const args = ['bench', '--profile', o.profile, '--backend', b.name, '--steps', String(o.steps), '--warmup', String(o.warmup), '--workers', String(workers), '--json', ...(o.batch ? ['--batch', String(o.batch)] : [])];
          const r = spawnSync(process.execPath, [path.join(projectRoot(), 'bin', 'rvpt.js'), ...args], { encoding: 'utf8' });
          if (r.status !== 0) throw new Error(`rvpt ${args.join(' ')} failed: ${(r.stderr || '').trim().split('\n').pop()}`);
          return JSON.parse(r.stdout.trim().split('\n').pop()!) as BenchResult;
        };
        const cmp = await compareWorkers(o.rounds, run, (s) => process.stderr.write(`[bench] ${s}\n`));
        if (o.json) console.log(JSON.stringify({ ...cmp, provenance: provenance() }));
        else {
          const m = cmp.median;
          console.log(`backend ${b.name}, profile ${profile.name}, ${o.rounds} rounds of ${o.steps} steps after ${o.warmup} warm-up steps at each worker count`);
          console.log(`one core: efficiency ${m.oneCoreEfficiency.toFixed(3)} (median); two cores: ${m.twoOverOneMs.toFixed(2)}x one in ms, ${m.twoOverOneNormalised.toFixed(2)}x normalised (medians of the paired rounds)`);
          const a = cmp.account;
          if (a) {
            const pair = (x: { main: number; worker: number }) => `${x.main.toFixed(1)} / ${x.worker.toFixed(1)}`;
            console.log(`two-core step, ms (main / worker): own work ${pair(a.computeMs)}, copies ${pair(a.copyMs)}, waiting for the other ${pair(a.waitMs)}`);
            console.log(`per step, one core / two: training threads runnable without a CPU ${a.runQueueMs.one.toFixed(1)} / ${a.runQueueMs.two.toFixed(1)} ms; other threads (V8 GC, compiler) on a CPU ${a.otherThreadsMs.one.toFixed(1)} / ${a.otherThreadsMs.two.toFixed(1)} ms`);
          }
        }
        return;
      }
      const r = await benchTrainStep(profile.model, o.batch ?? profile.benchBatch, o.steps, b.name, (s) => process.stderr.write(`[bench] ${s}\n`), o.workers, o.warmup);
      if (o.json) console.log(JSON.stringify(r));
      else {
        console.log(`backend ${r.backend}, profile ${profile.name}, batch ${r.config.batch}, workers ${r.workers}, ${r.warmupSteps} warm-up steps`);
        console.log(`step: median ${r.msPerStep.median.toFixed(0)} ms (min ${r.msPerStep.min.toFixed(0)}, max ${r.msPerStep.max.toFixed(0)}), ${r.stepGflop.toFixed(2)} GFLOP`);
        console.log(`training ${r.gflops.toFixed(2)} GFLOP/s; plain matmul ${r.matmulGflops.toFixed(2)} GFLOP/s; efficiency ${r.efficiency.toFixed(3)}`);
        console.log(`this model's dense products alone ${r.denseGflops.toFixed(2)} GFLOP/s (ceiling on efficiency about ${r.efficiencyCeiling.toFixed(2)})`);
        const c = r.threadCpu;
        if (c) console.log(`per step, on a CPU: main ${c.mainMs.toFixed(1)} ms${r.workers === 2 ? `, worker ${c.workerMs.toFixed(1)} ms` : ''}, other threads ${c.otherMs.toFixed(1)} ms; runnable without one: main ${c.mainWaitMs.toFixed(1)} ms${r.workers === 2 ? `, worker ${c.workerWaitMs.toFixed(1)} ms` : ''}`);
        if (r.phasesMs) for (const side of ['main', 'worker'] as const) console.log(`${side} per step: ${STEP_PHASES.map((p) => `${p} ${r.phasesMs![side][p].toFixed(1)}`).join(', ')} ms`);
      }
    });
  return program;
}

export async function main(argv: string[]): Promise<number> {
  return runProgram(buildCli(), argv);
}
