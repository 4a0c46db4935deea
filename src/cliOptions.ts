/**
 * Option parsers shared by the `rvpt` command and the lab's `rvpt-lab`: each error names the option and the value.
 */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { PROFILES, Profile, profileDatasets } from './experiments/profiles';
import { makeTrigger } from './attacks/registry';

/** A profile with --jobs applied (cell processes are not part of any cache key: the numbers do not depend on them). */
export function withJobs(profile: Profile, jobs: number | undefined): Profile {
  return jobs === undefined ? profile : { ...profile, jobs };
}

export function int(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('It must be a non-negative integer.');
  return n;
}

export function positiveNumber(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError('It must be a positive number, e.g. 1e-3.');
  return n;
}

export function rate(v: string): number {
  const n = Number(v);
  if (!(n > 0 && n < 1)) throw new InvalidArgumentError('It must be a number in (0, 1), e.g. 0.003 for 0.3%.');
  return n;
}

/** One option value, parsed; an error names the option and the value. */
export function optionValue(what: string, x: string, parse: (x: string) => number): number {
  try {
    return parse(x.trim());
  } catch (e) {
    throw new InvalidArgumentError(`--${what}: '${x}': ${(e as Error).message}`);
  }
}

/** A comma-separated option's values, each parsed as optionValue does. */
export function numberList(v: string | undefined, what: string, parse: (x: string) => number): number[] | undefined {
  if (v === undefined) return undefined;
  return String(v)
    .split(',')
    .map((x) => optionValue(what, x, parse));
}

/** A parser of positive whole numbers; `what` and `example` say what the number counts in the error. */
export function wholeNumber(what: string, example: number): (x: string) => number {
  return (x) => {
    const n = Number(x);
    if (!Number.isInteger(n) || n < 1) throw new Error(`It must be a positive whole number ${what}, e.g. ${example}.`);
    return n;
  };
}

/** --seeds: defense seeds, whole numbers of at least 0 (the seed and attribute probes). */
export function seedList(v: string | undefined): number[] | undefined {
  return numberList(v, 'seeds', (x) => {
    const n = Number(x);
    if (x === '' || !Number.isInteger(n) || n < 0) throw new Error('It must be a whole number of at least 0, e.g. 3.');
    return n;
  });
}

/** A --dataset option: one of the profile's datasets (unset: its main one). */
export function datasetOption(v: string | undefined, profile: Profile): string {
  const dataset = v ?? profile.datasets.main;
  if (!profileDatasets(profile).includes(dataset)) throw new InvalidArgumentError(`--dataset: profile '${profile.name}' has no dataset '${dataset}' (it has ${profileDatasets(profile).join(', ')}).`);
  return dataset;
}

/** A comma-separated --attacks option, each checked against the registry before any training (unset: undefined). */
/** An attack and its trigger parameters, checked against the registry before any work (a usage error: exit 2). */
export function checkAttack(name: string, config: Record<string, unknown>): void {
  try {
    makeTrigger(name, config);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

export function attackList(v: string | undefined, profile: Profile): string[] | undefined {
  const attacks = v ? String(v).split(',') : undefined;
  for (const a of attacks ?? []) checkAttack(a, profile.triggers?.[a] ?? {}); // names the registered attacks
  return attacks;
}


/** The options every command takes: --profile, --seed, --backend. */
export function commonOptions(c: Command): Command {
  return c
    .option('-p, --profile <name>', `profile: ${Object.keys(PROFILES).join(' | ')}, or a profile file (path ending in .json)`, 'transfer')
    .option('--seed <n>', 'random seed', int)
    .option('--backend <name>', 'force a TF.js backend: tensorflow | wasm | cpu (default: best available; env RVPT_BACKEND)');
}

/** A command line program as the `rvpt` commands share it: its name, its help after an error, errors returned. */
export function newProgram(name: string, description: string): Command {
  return (
    new Command(name)
      .description(description)
      .showHelpAfterError(`(run \`${name} --help\` for usage)`)
      .showSuggestionAfterError(true)
      // Set before adding sub-commands, which copy it: errors come back here instead of exiting the process.
      .exitOverride()
  );
}

/** Run a program on argv; the exit status: 0 done, 1 a run-time failure (its message printed), 2 a usage error. */
export async function runProgram(program: Command, argv: string[]): Promise<number> {
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    // A bad option value found inside a command (not by commander's own parsing, which prints its errors itself).
    if (e instanceof InvalidArgumentError) {
      process.stderr.write(`${program.name()}: ${e.message}\n(run \`${program.name()} --help\` for usage)\n`);
      return 2;
    }
    if (e instanceof CommanderError) return e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.exitCode === 0 ? 0 : 2;
    process.stderr.write(`${program.name()}: ${(e as Error).message}\n`);
    return 1;
  }
}
