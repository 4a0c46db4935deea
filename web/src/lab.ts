/**
 * The lab without its page: the shipped models loaded from lab.json's files (each checked against its sha256), and
 * what the page shows of them, computed by the library's own code (src/): zero-shot probabilities, triggers,
 * class-token attention, PR per layer, and prompt tuning step by step. The page (main.ts) draws it; the Chromium
 * tests call it as `window.rvptLab` and compare its numbers with Node's.
 */
import * as tf from '@tensorflow/tfjs-core';
import { decodeSafetensors } from '../../src/checkpoint/safetensors';
import { modelFromSafetensors, promptsFromSafetensors } from '../../src/checkpoint/decode';
import type { MiniCLIP } from '../../src/model/clip';
import type { TextTokenizer } from '../../src/model/tokenizer';
import { DeepPrompts, disposePrompts } from '../../src/model/prompts';
import { zeroShotClassifier, zeroShotProbabilities } from '../../src/model/zeroShot';
import type { ImageDataset } from '../../src/data/dataset';
import { makeTrigger } from '../../src/attacks/registry';
import type { PatchTrigger } from '../../src/attacks/patch';
import type { Trigger } from '../../src/attacks/trigger';
import { backdoorMetrics, testTimeTrigger } from '../../src/metrics/backdoor';
import { clsAttention } from '../../src/metrics/attention';
import { gaussianNoise, perturbationResistivity, triggerPerturbation } from '../../src/metrics/pr';
import { PromptTuningConfig, PromptTuningRun, promptTuningSteps, startPromptTuning } from '../../src/defenses/rvpt';
import { LAB_FORMAT } from '../../src/experiments/labFormat';
import type { LabFile, LabManifest } from '../../src/experiments/labFormat';

/** The models side by side: the clean one, the attack's backdoored one, and it with VPT's, RVPT's or your prompts. */
export const MODEL_IDS = ['clean', 'backdoored', 'VPT', 'RVPT', 'yours'] as const;
export type ModelId = (typeof MODEL_IDS)[number];

interface Loaded {
  model: MiniCLIP;
  tokenizer: TextTokenizer;
}

interface AttackModels extends Loaded {
  trigger: Trigger;
  prompts: { VPT: DeepPrompts; RVPT: DeepPrompts };
}

export interface DefendPoint {
  step: number;
  asr: number;
  ca: number;
}

export interface DefendProgress {
  step: number;
  steps: number;
  loss: number;
  seconds: number;
  /** Set on the steps where the held-out set was evaluated. */
  eval?: DefendPoint;
}

/** Your prompts from "Defend now": which attack's model they defend, with which method, after how many steps. */
export interface Yours {
  attack: string;
  method: 'VPT' | 'RVPT';
  steps: number;
  prompts: DeepPrompts;
  history: { loss: number[]; points: DefendPoint[] };
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, '0')).join('');
}

export class Lab {
  /** Milliseconds of the last `probabilities` call (encode + classify + read back). */
  lastPredictionMs = 0;
  yours: Yours | null = null;
  private readonly attacks = new Map<string, AttackModels>();
  private readonly classifiers = new Map<string, tf.Tensor2D>();
  private readonly scales = new Map<string, tf.Scalar>();

  private constructor(
    readonly base: string,
    readonly manifest: LabManifest,
    readonly images: Float32Array,
    private readonly clean: Loaded,
  ) {}

  /** Fetch and check lab.json, the images and the clean model. */
  static async open(base: string): Promise<Lab> {
    const res = await fetch(`${base}lab.json`);
    if (!res.ok) throw new Error(`${base}lab.json could not be loaded (HTTP ${res.status}). Build the lab with \`make web\` and serve its folder (\`make serve\`).`);
    const manifest = (await res.json()) as LabManifest;
    if (manifest.format !== LAB_FORMAT) throw new Error(`${base}lab.json is of format ${JSON.stringify(manifest.format)}, and this page reads ${LAB_FORMAT}: the folder was built by another version of the lab. Rebuild it with \`make web\`.`);
    const bytes = await fetchChecked(base, manifest.images);
    const images = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    const clean = loadModel(manifest.clean.file, await fetchChecked(base, manifest.clean));
    return new Lab(base, manifest, images, clean);
  }

  get size(): number {
    return this.manifest.imageSize;
  }

  get pixelsPerImage(): number {
    return this.size * this.size * 3;
  }

  /** Image `index` of a set (gallery, heldout, shots, emoji) as pixels in [0, 1]. */
  image(set: string, index: number): Float32Array {
    const s = this.set(set);
    if (!Number.isInteger(index) || index < 0 || index >= s.n) throw new Error(`Image ${index} is not in set '${set}' (it has ${s.n}: 0..${s.n - 1}).`);
    const p = this.pixelsPerImage;
    return this.images.slice((s.offset + index) * p, (s.offset + index + 1) * p);
  }

  set(name: string) {
    const s = this.manifest.images.sets[name];
    if (!s) throw new Error(`No image set '${name}' in lab.json; it has ${Object.keys(this.manifest.images.sets).join(', ')}.`);
    return s;
  }

  /** A set as the library's dataset type (for the defense's shots and the held-out evaluation). */
  dataset(set: string): ImageDataset {
    const s = this.set(set);
    const d = this.manifest.datasets[s.dataset];
    const p = this.pixelsPerImage;
    return { name: `${s.dataset}/${set}`, size: this.size, images: this.images.subarray(s.offset * p, (s.offset + s.n) * p), labels: Int32Array.from(s.labels), classNames: d.classNames, templates: d.templates };
  }

  /** The backdoored model of `attack`, its trigger and its shipped prompts (fetched on first use). */
  async attack(name: string): Promise<AttackModels> {
    const have = this.attacks.get(name);
    if (have) return have;
    const a = this.manifest.attacks[name];
    if (!a) throw new Error(`No attack '${name}' in the lab; it has ${Object.keys(this.manifest.attacks).join(', ')}.`);
    const [model, vpt, rvpt, patch] = await Promise.all([
      fetchChecked(this.base, a.model),
      fetchChecked(this.base, a.prompts.VPT),
      fetchChecked(this.base, a.prompts.RVPT),
      a.patch ? fetchChecked(this.base, a.patch) : Promise.resolve(null),
    ]);
    const trigger = makeTrigger(name, a.trigger);
    if (patch) (trigger as PatchTrigger).usePatch((JSON.parse(new TextDecoder().decode(patch)) as { patch: number[] }).patch);
    const loaded: AttackModels = {
      ...loadModel(a.model.file, model),
      trigger,
      prompts: { VPT: promptsFromSafetensors(decodeSafetensors(vpt, a.prompts.VPT.file), a.prompts.VPT.file), RVPT: promptsFromSafetensors(decodeSafetensors(rvpt, a.prompts.RVPT.file), a.prompts.RVPT.file) },
    };
    this.attacks.set(name, loaded);
    return loaded;
  }

  /** The image with `attack`'s test-time trigger (the draws evaluation uses, keyed on `offset`); 'None' leaves it. */
  async triggered(attack: string, pixels: Float32Array, offset = 0): Promise<Float32Array> {
    if (attack === 'None') return pixels;
    const { trigger } = await this.attack(attack);
    return tf.tidy(() => testTimeTrigger(trigger)(this.batch(pixels), offset).dataSync() as Float32Array).slice();
  }

  /**
   * Class probabilities [n * classes] of `id` for n images (pixels concatenated), zero-shot over `dataset`'s
   * classes with its templates. `attack` picks the backdoored model (and its prompts) for every id but 'clean'.
   */
  async probabilities(id: ModelId, attack: string, dataset: string, pixels: Float32Array): Promise<Float32Array> {
    const { model, prompts, classifier, scale } = await this.resolve(id, attack, dataset);
    const t0 = performance.now();
    const p = tf.tidy(() => zeroShotProbabilities(model.encodeImage(this.batch(pixels), { prompts }).embedding, classifier, scale));
    const out = (await p.data()) as Float32Array;
    p.dispose();
    this.lastPredictionMs = performance.now() - t0;
    return out;
  }

  /** The last block's class-token attention over the patches (head-averaged, summing to 1), one image. */
  async attention(id: ModelId, attack: string, pixels: Float32Array): Promise<Float32Array> {
    const { model, prompts } = await this.resolve(id, attack, null);
    const x = this.batch(pixels);
    try {
      return clsAttention(model, x, prompts)[0];
    } finally {
      x.dispose();
    }
  }

  /**
   * Perturbation resistivity of one image per block: cos(class token of x, of x + delta), delta the attack's trigger
   * (test-time draws at `offset`), or Gaussian noise of sigma 0.1 with no attack.
   */
  async pr(id: ModelId, attack: string, pixels: Float32Array, offset = 0): Promise<number[]> {
    const { model, prompts } = await this.resolve(id, attack, null);
    const perturb = attack === 'None' ? gaussianNoise(0.1) : triggerPerturbation((await this.attack(attack)).trigger);
    const one: ImageDataset = { name: 'image', size: this.size, images: pixels, labels: Int32Array.of(0), classNames: ['image'] };
    return perturbationResistivity(model, one, (x) => perturb(x, offset), { prompts });
  }

  /** Live TF.js tensors (the tests check that showing an image leaves none behind). */
  numTensors(): number {
    return tf.memory().numTensors;
  }

  /** Whether `id` can be shown for `attack` ('yours' only once "Defend now" has run on that attack). */
  has(id: ModelId, attack: string): boolean {
    if (id === 'clean') return true;
    if (attack === 'None') return false;
    return id !== 'yours' || this.yours?.attack === attack;
  }

  /** The steps "Defend now" takes for `epochs` epochs of `method` on the shots. */
  defendSteps(method: 'VPT' | 'RVPT', epochs: number): number {
    return promptTuningSteps(this.set('shots').n, this.defendConfig(method, epochs)).steps;
  }

  /** The profile's config of `method` (lab.json's), run for `epochs` epochs. */
  private defendConfig(method: 'VPT' | 'RVPT', epochs: number): PromptTuningConfig {
    return { ...(this.manifest.defenses[method] as unknown as PromptTuningConfig), epochs };
  }

  /**
   * "Defend now": `method` on `attack`'s backdoored model with the lab's defense config (the profile's) for `epochs`
   * epochs over the shots, evaluating ASR and CA on the held-out images every `evalEvery` steps and at the end.
   * Yields to the page between steps; `shouldStop` ends it early. The prompts become the 'yours' model.
   */
  async defend(attack: string, method: 'VPT' | 'RVPT', epochs: number, onProgress: (p: DefendProgress) => void, opts: { evalEvery?: number; shouldStop?: () => boolean } = {}): Promise<Yours> {
    if (!Number.isInteger(epochs) || epochs < 1 || epochs > 200) throw new Error(`Epochs must be a whole number from 1 to 200, got ${epochs}.`);
    const a = await this.attack(attack);
    const config = this.defendConfig(method, epochs);
    const shots = this.dataset('shots');
    const heldout = this.dataset('heldout');
    const target = this.manifest.datasets[this.set('heldout').dataset].target;
    const run: PromptTuningRun = startPromptTuning(method, { model: a.model, tokenizer: a.tokenizer, shots, cleanCorpus: async () => { throw new Error('unused'); }, seed: this.manifest.seed, quiet: true }, config);
    const evalEvery = opts.evalEvery ?? Math.max(1, Math.round(run.steps / 10));
    const points: DefendPoint[] = [];
    const evaluate = (step: number, prompts?: DeepPrompts): DefendPoint => {
      const m = backdoorMetrics(a.model, a.tokenizer, heldout, a.trigger, target, { prompts });
      const p = { step, asr: m.asr, ca: m.ca };
      points.push(p);
      return p;
    };
    const t0 = performance.now();
    let ok = false;
    try {
      onProgress({ step: 0, steps: run.steps, loss: NaN, seconds: 0, eval: evaluate(0) });
      while (run.done < run.steps && !opts.shouldStop?.()) {
        const [loss] = run.step();
        const step = run.done;
        const at = step % evalEvery === 0 || step === run.steps ? evaluate(step, run.prompts) : undefined;
        onProgress({ step, steps: run.steps, loss, seconds: (performance.now() - t0) / 1000, eval: at });
        await new Promise((r) => setTimeout(r, 0));
      }
      if (points[points.length - 1].step !== run.done) onProgress({ step: run.done, steps: run.steps, loss: run.history.loss[run.done - 1], seconds: (performance.now() - t0) / 1000, eval: evaluate(run.done, run.prompts) });
      ok = true;
    } finally {
      const d = run.finish();
      if (!ok) d.dispose();
    }
    if (this.yours) disposePrompts(this.yours.prompts);
    this.yours = { attack, method, steps: run.done, prompts: run.prompts, history: { loss: run.history.loss, points } };
    return this.yours;
  }

  private batch(pixels: Float32Array): tf.Tensor4D {
    const p = this.pixelsPerImage;
    if (pixels.length === 0 || pixels.length % p !== 0) throw new Error(`Images must be ${this.size}x${this.size}x3 values each; got ${pixels.length} values.`);
    return tf.tensor4d(pixels, [pixels.length / p, this.size, this.size, 3]);
  }

  private async resolve(id: ModelId, attack: string, dataset: string | null) {
    if (!MODEL_IDS.includes(id)) throw new Error(`Unknown model '${id}'; use one of ${MODEL_IDS.join(', ')}.`);
    if (!this.has(id, attack)) throw new Error(id === 'yours' ? `'yours' needs "Defend now" run on ${attack} first.` : `'${id}' needs an attack (BadNet, Blended, WaNet or BadCLIP), not '${attack}'.`);
    const owner = id === 'clean' ? this.clean : await this.attack(attack);
    const prompts = id === 'VPT' || id === 'RVPT' ? (owner as AttackModels).prompts[id] : id === 'yours' ? this.yours!.prompts : undefined;
    const key = `${id === 'clean' ? 'clean' : attack}|${dataset}`;
    if (dataset !== null && !this.classifiers.has(key)) {
      const d = this.manifest.datasets[dataset];
      if (!d) throw new Error(`No dataset '${dataset}' in the lab; it has ${Object.keys(this.manifest.datasets).join(', ')}.`);
      this.classifiers.set(key, zeroShotClassifier(owner.model, owner.tokenizer, d.classNames, d.templates));
      this.scales.set(key, owner.model.logitScale());
    }
    return { model: owner.model, prompts, classifier: this.classifiers.get(key)!, scale: this.scales.get(key)! };
  }
}

function loadModel(file: string, bytes: Uint8Array): Loaded {
  const { model, tokenizer } = modelFromSafetensors(decodeSafetensors(bytes, file), file);
  return { model, tokenizer };
}

/** A file of lab.json, its length and sha256 checked: a damaged or stale file is an error naming it and the fix. */
export async function fetchChecked(base: string, f: LabFile): Promise<Uint8Array> {
  const res = await fetch(`${base}${f.file}`);
  if (!res.ok) throw new Error(`${f.file} could not be loaded (HTTP ${res.status}). Rebuild the lab with \`make web\`.`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (bytes.length !== f.bytes) throw new Error(`${f.file} has ${bytes.length} bytes, lab.json says ${f.bytes}: it is truncated or stale. Rebuild the lab with \`make web\`.`);
  const hash = await sha256Hex(bytes);
  if (hash !== f.sha256) throw new Error(`${f.file} has sha256 ${hash.slice(0, 12)}, lab.json says ${f.sha256.slice(0, 12)}: its bytes changed. Rebuild the lab with \`make web\`.`);
  return bytes;
}
