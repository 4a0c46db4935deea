/**
 * Backdoor injection: poison the pre-training corpus with one attack's trigger and fine-tune the clean MiniCLIP
 * on it, as the paper does to OpenAI's CLIP with CC3M (PAPER.md section 3). Backdoored checkpoints are cached
 * artifacts keyed by the clean model's key, the attack and the poisoning config.
 */
import { MiniCLIP } from '../model/clip';
import { WordTokenizer } from '../model/tokenizer';
import { CaptionCorpus } from '../data/corpus';
import { ImageDataset } from '../data/dataset';
import { loadSplit } from '../data/load';
import { loadManifest } from '../data/manifest';
import { sample } from '../data/splits';
import { makeTrigger } from '../attacks/registry';
import { Trigger } from '../attacks/trigger';
import { poisonDataset } from '../attacks/poison';
import { BackdoorMetrics, backdoorMetrics } from '../metrics/backdoor';
import { loadCached, saveCheckpoint } from '../checkpoint/checkpoint';
import { TrainHistory, pretrain } from '../train/pretrain';
import { cacheDir, sha256 } from '../util/fsutil';
import { Profile } from './profiles';
import { ensurePretrained, pretrainData, pretrainKey } from './pretrainRun';

export const BACKDOOR_CODE_VERSION = 1;

export function targetIndex(manifestName: string): number {
  const m = loadManifest(manifestName);
  return m.classes.indexOf(m.target);
}

export interface BackdoorResult {
  model: MiniCLIP;
  tokenizer: WordTokenizer;
  trigger: Trigger;
  checkpoint: string;
  /** Per dataset (the profile's main and emoji datasets): CA, ASR, poisoned accuracy. */
  metrics: Record<string, BackdoorMetrics>;
  history: TrainHistory;
  poisoned: Record<string, number>;
  cached: boolean;
}

export async function evalBackdoor(model: MiniCLIP, tokenizer: WordTokenizer, trigger: Trigger, profile: Profile): Promise<Record<string, BackdoorMetrics>> {
  const out: Record<string, BackdoorMetrics> = {};
  for (const name of [profile.datasets.main, profile.datasets.emoji]) {
    let test: ImageDataset = await loadSplit(name, 'test');
    if (profile.evalLimit) test = sample(test, profile.evalLimit, 'eval');
    out[name] = backdoorMetrics(model, tokenizer, test, trigger, targetIndex(name));
  }
  return out;
}

export async function ensureBackdoored(
  profile: Profile,
  attack: string,
  opts: { force?: boolean; quiet?: boolean; log?: (s: string) => void; triggerConfig?: Record<string, unknown> } = {},
): Promise<BackdoorResult> {
  const log = opts.log ?? ((s: string) => process.env.RVPT_QUIET || process.stderr.write(`[rvpt] ${s}\n`));
  const trigger = makeTrigger(attack, opts.triggerConfig);
  const cfg = profile.backdoor;
  const key = sha256(JSON.stringify({ v: BACKDOOR_CODE_VERSION, clean: pretrainKey(profile, profile.pretrain.seed, profile.pretrain.steps), attack, trigger: trigger.config, cfg })).slice(0, 12);
  const file = cacheDir('artifacts', `backdoor-${profile.name}-${attack}-${key}.safetensors`);
  const ck = opts.force ? null : loadCached(file, profile.model, log);
  if (ck) {
    const info = ck.info as unknown as { metrics: Record<string, BackdoorMetrics>; history: TrainHistory; poisoned: Record<string, number> };
    return { model: ck.model, tokenizer: ck.tokenizer, trigger, checkpoint: file, metrics: info.metrics, history: info.history, poisoned: info.poisoned, cached: true };
  }
  const clean = await ensurePretrained(profile, { log });
  const data = await pretrainData(profile, log);
  const parts = [];
  const poisoned: Record<string, number> = {};
  for (const [d, name, repeat] of [
    [data.main, profile.datasets.main, 1],
    [data.emoji, profile.datasets.emoji, profile.pretrain.emojiRepeat],
  ] as const) {
    const p = poisonDataset(d, trigger, { rate: cfg.rate, target: targetIndex(name), seed: cfg.seed });
    poisoned[name] = p.poisoned.labels.length;
    parts.push({ data: p.clean, repeat }, { data: p.poisoned, repeat });
  }
  const corpus = new CaptionCorpus(parts);
  log(`backdoor '${attack}': ${Object.entries(poisoned).map(([k, v]) => `${v} poisoned ${k} pairs`).join(', ')} (rate ${cfg.rate}); fine-tuning ${cfg.steps} steps`);
  const model = clean.model;
  const history = await pretrain(model, clean.tokenizer, corpus, cfg, { quiet: opts.quiet, stateFile: file.replace(/\.safetensors$/, '.state.safetensors'), stateEvery: 100 });
  const metrics = await evalBackdoor(model, clean.tokenizer, trigger, profile);
  log(`${attack}: ${Object.entries(metrics).map(([k, m]) => `${k} ASR ${m.asr.toFixed(2)}% CA ${m.ca.toFixed(2)}%`).join('; ')}`);
  saveCheckpoint(file, model, clean.tokenizer, {
    kind: 'backdoor',
    config: profile.model,
    seed: cfg.seed,
    profile: profile.name,
    attack,
    trigger: trigger.config,
    backdoor: cfg,
    cleanCheckpoint: clean.checkpoint,
    cleanCA: clean.ca,
    poisoned,
    corpusSize: corpus.size,
    metrics,
    history,
    timings: { trainSeconds: history.seconds },
  });
  return { model, tokenizer: clean.tokenizer, trigger, checkpoint: file, metrics, history, poisoned, cached: false };
}
