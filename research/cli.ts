/**
 * `rvpt-lab`: the research probes' command line (strength-probe, tuning-probe, repulsion-probe, seed-probe,
 * attribute-probe). Each writes its results into research/results/ (profile `small`) or the profile's cache results
 * folder, from where research/Makefile copies them. The library in src/ never imports this folder.
 */
import { Command, InvalidArgumentError } from 'commander';
import * as path from 'path';
import { initBackend } from '../src/backend';
import { getProfile } from '../src/experiments/profiles';
import { projectRoot } from '../src/util/fsutil';
import { FR_TOKENS, FrToken } from '../src/defenses/rvpt';
import { attackList, commonOptions, datasetOption, int, newProgram, numberList, optionValue, rate, runProgram, seedList, wholeNumber, withJobs } from '../src/cliOptions';
import { STRENGTH_GRID, runStrengthProbe, strengthGrid } from './src/strengthProbe';
import { BUDGET_GRID, MARGIN_GRID, TUNING_GRID, runTuningProbe, tuningAttacks } from './src/tuningProbe';
import { REPULSION_ALPHAS, REPULSION_PROFILES, runRepulsionProbe } from './src/repulsionProbe';
import { ATTRIBUTE_PROFILE, runAttributeProbe } from './src/attributeProbe';
import { SEED_PROBE_METHODS, SEED_PROBE_SEEDS, runSeedProbe } from './src/seedProbe';

export function buildLabCli(): Command {
  const program = newProgram('rvpt-lab', 'The research probes behind research/JOURNAL.md: each reruns the defenses under one changed setting.');
  const common = commonOptions;

  common(program.command('strength-probe').description('RVPT and VPT against one attack pressed in at other poisoning rates and fine-tuning lrs (research/notebooks/probes.ipynb)'))
    .option('--attacks <names>', `attacks, comma-separated (default: ${[...new Set(STRENGTH_GRID.map((v) => v.attack))].join(',')})`)
    .option('--rates <list>', 'poisoning rates, comma-separated; with --lrs, every pair (default: the committed grid)')
    .option('--lrs <list>', 'backdoor fine-tuning learning rates, comma-separated (default: the committed grid)')
    .option('--backdoor-augment', 'fine-tune those backdoors with crops and flips (as the pre-training), not plain images')
    .option('--jobs <n>', 'processes training side by side (default: the profile, small 2)', int)
    .action(async (o) => {
      const profile = withJobs(getProfile(o.profile), o.jobs);
      const attacks = attackList(o.attacks, profile);
      const rates = numberList(o.rates, 'rates', rate);
      const lrs = numberList(o.lrs, 'lrs', (x) => {
        const n = Number(x);
        if (!(n > 0)) throw new Error('It must be a positive number, e.g. 1e-4.');
        return n;
      });
      const grid = attacks || rates || lrs || o.backdoorAugment ? strengthGrid(attacks, rates, lrs, !!o.backdoorAugment) : STRENGTH_GRID;
      await initBackend(o.backend);
      const r = await runStrengthProbe(profile, grid, (s) => process.stderr.write(`[rvpt] ${s}\n`));
      console.log(`strength probe: ${r.path}`);
    });

  common(program.command('tuning-probe').description('VPT and RVPT with more clean shots at the same steps (or, with --budgets, more steps), with and without augmentation (research/notebooks/probes.ipynb)'))
    .option('--attacks <names>', 'attacks, comma-separated (default: BadNet,Blended,BadCLIP)')
    .option('--shots <list>', `shots per class, comma-separated; each with and without augmentation (default: ${[...new Set(TUNING_GRID.map((v) => v.shots))].join(',')}; with --budgets ${[...new Set(BUDGET_GRID.map((v) => v.shots))].join(',')})`)
    .option('--budgets <list>', `optimiser steps as multiples of the tables', comma-separated, e.g. ${[...new Set(BUDGET_GRID.map((v) => v.budget))].join(',')}; writes tuning-probe-budget.{json,md} (default: 1, the same steps)`)
    .option('--margins <list>', `RVPT's FR margins m in [-1, 1], comma-separated, e.g. ${[...new Set(MARGIN_GRID.map((v) => v.margin))].join(',')} (-1: full repulsion); writes tuning-probe-margin.{json,md} (default with it: ${MARGIN_GRID[0].shots} shots, budget ${MARGIN_GRID[0].budget})`)
    .option('-d, --dataset <name>', "the backdoored models' dataset (default: the profile's main one; emoji: Table 2's attacks, and with --budgets or --margins the profile's shots); files get -DATASET")
    .option('--jobs <n>', 'processes training side by side (default: the profile, small 2)', int)
    .action(async (o) => {
      const profile = withJobs(getProfile(o.profile), o.jobs);
      const dataset = datasetOption(o.dataset, profile);
      const main = dataset === profile.datasets.main;
      const attacks = attackList(o.attacks, profile) ?? tuningAttacks(profile, dataset);
      const margins = numberList(o.margins, 'margins', (x) => {
        const n = Number(x);
        if (x === '' || !(n >= -1 && n <= 1)) throw new Error('It must be a cosine between -1 (full repulsion, the paper) and 1 (none), e.g. 0.5.');
        return n;
      });
      const budgets = numberList(o.budgets, 'budgets', wholeNumber("(a multiple of the tables' steps)", 4)) ?? (margins ? [MARGIN_GRID[0].budget!] : undefined);
      // Emoji has fewer than 256 images in some classes: there the longer runs keep the tables' shots.
      const longShots = main ? (margins ? MARGIN_GRID : BUDGET_GRID)[0].shots : profile.shots;
      const shots = numberList(o.shots, 'shots', wholeNumber('of shots per class', 64)) ?? (budgets ? [longShots] : main ? undefined : [profile.shots]);
      // Only the options given go into a variant, so the same-steps grid's rows keep the committed probe's shape.
      const variant = (k: number, augment: boolean, budget?: number, margin?: number) => ({ shots: k, augment, ...(budget === undefined ? {} : { budget }), ...(margin === undefined ? {} : { margin }) });
      const grid = shots
        ? shots.flatMap((k) => (budgets ?? [undefined]).flatMap((b) => (margins ?? [undefined]).flatMap((m) => [true, false].map((augment) => variant(k, augment, b, m)))))
        : TUNING_GRID;
      await initBackend(o.backend);
      const r = await runTuningProbe(profile, attacks, grid, (s) => process.stderr.write(`[rvpt] ${s}\n`), dataset);
      console.log(`tuning probe: ${r.path}`);
    });

  common(program.command('repulsion-probe').description("RVPT at several alphas on each profile's backdoored models, VPT as alpha 0: each width's trade-off (research/notebooks/probes.ipynb)"))
    .option('--profiles <list>', `profiles to compare, comma-separated; the first one's results folder gets the files (default: ${REPULSION_PROFILES.join(',')}, or --profile alone when given)`)
    .option('--attacks <names>', 'attacks, comma-separated (default: BadNet,Blended,BadCLIP)')
    .option('--alphas <list>', `RVPT's alpha values, comma-separated (default: ${REPULSION_ALPHAS.join(',')})`)
    .option('--dataset <name>', "the dataset whose backdoored models are defended (default: the first profile's main one; emoji: Table 2's models)")
    .option('--jobs <n>', 'processes training side by side (default: the first profile, small 2)', int)
    .action(async (o, cmd: Command) => {
      const names = o.profiles ? String(o.profiles).split(',') : cmd.getOptionValueSource('profile') === 'cli' ? [o.profile] : REPULSION_PROFILES.map((n) => (n.endsWith('.json') ? path.join(projectRoot(), n) : n)); // the committed pair, from any directory
      const profiles = names.map((n: string, i: number) => (i === 0 ? withJobs(getProfile(n.trim()), o.jobs) : getProfile(n.trim())));
      const attacks = attackList(o.attacks, profiles[0]);
      const alphas = numberList(o.alphas, 'alphas', (x) => {
        const n = Number(x);
        if (!(n > 0) || !Number.isFinite(n)) throw new Error('It must be a positive number, e.g. 4 (alpha 0, VPT, is in every curve already).');
        return n;
      });
      const dataset = datasetOption(o.dataset, profiles[0]);
      await initBackend(o.backend);
      const r = await runRepulsionProbe(profiles, attacks, alphas, (s) => process.stderr.write(`[rvpt] ${s}\n`), dataset);
      console.log(`repulsion probe: ${r.path}`);
    });

  common(program.command('attribute-probe').description("a MiniCLIP whose captions also name each image's attributes: does it keep more than the class, and does RVPT then repel at less CA? (research/notebooks/probes.ipynb)"))
    .option('--with <profile>', `the profile with attribute captions (default: ${ATTRIBUTE_PROFILE}, made for small)`)
    .option('--attacks <names>', "attacks, comma-separated (default: the main dataset's table's six)")
    .option('--seeds <list>', `defense seeds, comma-separated (default: ${SEED_PROBE_SEEDS.join(',')})`)
    .option('--jobs <n>', 'processes training side by side (default: the profile, small 2)', int)
    .action(async (o) => {
      const base = withJobs(getProfile(o.profile), o.jobs);
      const other = withJobs(getProfile(o.with ?? path.join(projectRoot(), ATTRIBUTE_PROFILE)), o.jobs);
      const attacks = attackList(o.attacks, base);
      const seeds = seedList(o.seeds);
      await initBackend(o.backend);
      const r = await runAttributeProbe(base, other, { attacks, seeds, log: (s) => process.stderr.write(`[rvpt] ${s}\n`) });
      console.log(`attribute probe: ${r.path}`);
    });

  common(program.command('seed-probe').description("VPT and RVPT at several defense seeds on the tables' backdoored models: how far one cell moves with the seed alone (research/notebooks/probes.ipynb)"))
    .option('--attacks <names>', "attacks, comma-separated (default: the dataset's table's, six on the main dataset, three on emoji)")
    .option('--seeds <list>', `defense seeds, comma-separated; the profile's own (0 at small) reads the tables' cell (default: ${SEED_PROBE_SEEDS.join(',')})`)
    .option('--methods <list>', `of ${SEED_PROBE_METHODS.join(', ')}, comma-separated (default: both)`)
    .option('--dataset <name>', "the dataset whose backdoored models are defended (default: the profile's main one; emoji: Table 2's models)")
    .option('--fixed-shots', "tune every run on the tables' clean shots: only the initialisation, batch order and augmentation change with the seed")
    .option('--fr-token <where>', `where RVPT's FR reads the last block's class token: ${FR_TOKENS.join(' | ')} (the paper does not say; default residual, the tables')`, 'residual')
    .option('--fr-layers <list>', "the blocks at whose outputs RVPT's FR repels, 1-based, comma-separated, e.g. 6 for the last block alone at small (default: every prompted block, the paper's and the tables')")
    .option('--budget <n>', "VPT's and RVPT's steps as a multiple of the tables' (epochs and warm-up stretched alike), e.g. 16; files get -budget-N (default: 1)", (x: string) =>
      optionValue('budget', x, wholeNumber("(a multiple of the tables' steps)", 16)),
    )
    .option('--jobs <n>', 'processes training side by side (default: the profile, small 2)', int)
    .action(async (o) => {
      const profile = withJobs(getProfile(o.profile), o.jobs);
      const attacks = attackList(o.attacks, profile);
      const frLayers =
        o.frLayers === undefined
          ? undefined
          : numberList(o.frLayers, 'fr-layers', (x) => {
              const n = Number(x);
              if (x === '' || !Number.isInteger(n) || n < 1 || n > profile.model.layers) throw new Error(`It must be a block number from 1 to ${profile.model.layers}, e.g. ${profile.model.layers}.`);
              return n - 1;
            });
      const seeds = seedList(o.seeds);
      const methods = o.methods ? String(o.methods).split(',').map((m: string) => m.trim()) : undefined;
      for (const m of methods ?? []) if (!SEED_PROBE_METHODS.includes(m)) throw new InvalidArgumentError(`--methods: '${m}' is not one of ${SEED_PROBE_METHODS.join(', ')}.`);
      const dataset = datasetOption(o.dataset, profile);
      await initBackend(o.backend);
      const r = await runSeedProbe(profile, { attacks, seeds, dataset, methods, fixedShots: !!o.fixedShots, frToken: o.frToken as FrToken, frLayers, budget: o.budget, log: (s) => process.stderr.write(`[rvpt] ${s}\n`) });
      console.log(`seed probe: ${r.path}`);
    });

  return program;
}

export async function main(argv: string[]): Promise<number> {
  return runProgram(buildLabCli(), argv);
}
