/**
 * Real CLIP weights (OpenAI's ViT checkpoints, the paper's backdoored CLIPs, Hugging Face CLIPModel) into the same
 * MiniCLIP class, so every experiment runs unchanged at paper scale. Only safetensors are read: a torch pickle
 * (.pt) needs PyTorch to open safely; `scripts/pt-to-safetensors.py` converts one.
 *
 * Two namings (docs/PAPER-NOTES.md §6):
 *   OpenAI        visual.conv1.weight, visual.transformer.resblocks.N.attn.in_proj_weight, token_embedding.weight, ...
 *   Hugging Face  vision_model.embeddings.patch_embedding.weight, vision_model.encoder.layers.N.self_attn.q_proj.weight, ...
 * Prefixes that training code adds ('state_dict.', DDP's 'module.', 'model.') are stripped. Torch stores linear
 * weights [out, in]; MiniCLIP keeps them [in, out], so they are transposed, and conv1 [W, 3, p, p] becomes the
 * patch-embedding matrix [p * p * 3, W] in (row, column, channel) order, as our patchify flattens patches.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { CLIPConfig, CLIP_MEAN, CLIP_STD, validateConfig } from '../model/config';
import { MiniCLIP } from '../model/clip';
import { ParamMap, ownedVariable } from '../model/params';
import { RawTensor, readSafetensors } from './safetensors';
import { checkShapes } from './checkpoint';

export type ClipNaming = 'openai' | 'hf';

export interface LoadClipOptions {
  /** Attention heads of the image / text tower. Default: a Hugging Face config.json beside the file, else width / 64 (OpenAI's rule). */
  heads?: number;
  textHeads?: number;
}

export interface LoadedClip {
  model: MiniCLIP;
  naming: ClipNaming;
  /** Tensors in the file that the model does not use (position_ids buffers and the like). */
  unused: string[];
  file: string;
}

const PREFIXES = ['state_dict.', 'module.', 'model.'];

export function stripPrefixes(tensors: Record<string, RawTensor>): Record<string, RawTensor> {
  const out: Record<string, RawTensor> = {};
  for (const [k, v] of Object.entries(tensors)) {
    let name = k;
    for (let changed = true; changed; ) {
      changed = false;
      for (const p of PREFIXES) {
        if (name.startsWith(p)) {
          name = name.slice(p.length);
          changed = true;
        }
      }
    }
    out[name] = v;
  }
  return out;
}

export function detectNaming(tensors: Record<string, RawTensor>, file: string): ClipNaming {
  if (tensors['visual.conv1.weight']) return 'openai';
  if (tensors['vision_model.embeddings.patch_embedding.weight']) return 'hf';
  const some = Object.keys(tensors).slice(0, 5).join(', ');
  if (Object.keys(tensors).some((k) => k.startsWith('visual.layer') || k.startsWith('visual.attnpool'))) {
    throw new Error(`${file} holds a ResNet CLIP (visual.layer*, visual.attnpool): only ViT CLIPs are supported (the paper's ViT-B/32).`);
  }
  throw new Error(
    `${file}: unknown weight naming (first keys: ${some || 'none'}). Expected OpenAI CLIP names (visual.conv1.weight, visual.transformer.resblocks.0.attn.in_proj_weight, ...) ` +
      `or Hugging Face CLIPModel names (vision_model.embeddings.patch_embedding.weight, ...), optionally under 'state_dict.' or 'module.'.`,
  );
}

function countLayers(tensors: Record<string, RawTensor>, prefix: string): number {
  const re = new RegExp(`^${prefix.replace(/\./g, '\\.')}(\\d+)\\.`);
  let n = 0;
  for (const k of Object.keys(tensors)) {
    const m = re.exec(k);
    if (m) n = Math.max(n, Number(m[1]) + 1);
  }
  return n;
}

function need(tensors: Record<string, RawTensor>, name: string, file: string): RawTensor {
  const t = tensors[name];
  if (!t) throw new Error(`${file} is missing '${name}': the file is incomplete or not a full CLIP (image and text towers).`);
  return t;
}

/** Heads from a Hugging Face config.json beside the weights, when there is one. */
function hfConfigHeads(file: string): { heads?: number; textHeads?: number } {
  const cfgFile = path.join(path.dirname(file), 'config.json');
  if (!fs.existsSync(cfgFile)) return {};
  try {
    const c = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
    return { heads: c.vision_config?.num_attention_heads, textHeads: c.text_config?.num_attention_heads };
  } catch {
    return {};
  }
}

/** The MiniCLIP config that fits a checkpoint, read off its tensor shapes. */
export function inferClipConfig(tensors: Record<string, RawTensor>, naming: ClipNaming, file: string, opts: LoadClipOptions = {}): CLIPConfig {
  const o = naming === 'openai';
  const conv = need(tensors, o ? 'visual.conv1.weight' : 'vision_model.embeddings.patch_embedding.weight', file).shape;
  const pos = need(tensors, o ? 'visual.positional_embedding' : 'vision_model.embeddings.position_embedding.weight', file).shape;
  const proj = need(tensors, o ? 'visual.proj' : 'visual_projection.weight', file).shape;
  const tok = need(tensors, o ? 'token_embedding.weight' : 'text_model.embeddings.token_embedding.weight', file).shape;
  const tpos = need(tensors, o ? 'positional_embedding' : 'text_model.embeddings.position_embedding.weight', file).shape;
  if (conv.length !== 4 || conv[1] !== 3 || conv[2] !== conv[3]) throw new Error(`${file}: the patch embedding has shape [${conv}]; expected [width, 3, patch, patch].`);
  const [width, , patch] = conv;
  const grid = Math.round(Math.sqrt(pos[0] - 1));
  if (grid * grid !== pos[0] - 1) throw new Error(`${file}: ${pos[0]} image positions is not a square grid plus the class token.`);
  const textWidth = tok[1];
  const beside = naming === 'hf' ? hfConfigHeads(file) : {};
  const config: CLIPConfig = {
    imageSize: grid * patch,
    patch,
    width,
    layers: countLayers(tensors, o ? 'visual.transformer.resblocks.' : 'vision_model.encoder.layers.'),
    heads: opts.heads ?? beside.heads ?? width / 64,
    embedDim: o ? proj[1] : proj[0],
    textWidth,
    textLayers: countLayers(tensors, o ? 'transformer.resblocks.' : 'text_model.encoder.layers.'),
    textHeads: opts.textHeads ?? beside.textHeads ?? textWidth / 64,
    contextLength: tpos[0],
    vocabSize: tok[0],
    mean: CLIP_MEAN,
    std: CLIP_STD,
  };
  if (!Number.isInteger(config.heads) || !Number.isInteger(config.textHeads)) {
    throw new Error(`${file}: cannot tell the number of attention heads (widths ${width} and ${textWidth} are not multiples of 64); pass heads and textHeads.`);
  }
  validateConfig(config);
  return config;
}

/** Where each MiniCLIP parameter comes from: source tensor names, their expected shapes, and the conversion. */
interface Source {
  from: string[];
  shapes: number[][];
  convert: (t: tf.Tensor[]) => tf.Tensor;
}

const same = (t: tf.Tensor[]) => t[0];
const linear = (t: tf.Tensor[]) => tf.transpose(t[0]);
const packedLinear = (t: tf.Tensor[]) => tf.transpose(tf.concat(t, 0));
const packedBias = (t: tf.Tensor[]) => tf.concat(t, 0);
/** conv1 [W, 3, p, p] -> [p, p, 3, W] -> [p * p * 3, W]. */
const patchEmbedding = (t: tf.Tensor[]) => tf.reshape(tf.transpose(t[0], [2, 3, 1, 0]), [-1, t[0].shape[0]]);

function sources(c: CLIPConfig, naming: ClipNaming): Record<string, Source> {
  const s: Record<string, Source> = {};
  const o = naming === 'openai';
  const add = (ours: string, from: string | string[], shapes: number[][], convert: Source['convert'] = same) =>
    (s[ours] = { from: Array.isArray(from) ? from : [from], shapes, convert });
  const blocks = (ours: string, theirs: string, width: number, layers: number) => {
    for (let i = 0; i < layers; i++) {
      const p = `${ours}.resblocks.${i}`;
      const q = o ? `${theirs}.resblocks.${i}` : `${theirs}.encoder.layers.${i}`;
      const w = [width];
      if (o) {
        add(`${p}.attn.in_proj_weight`, `${q}.attn.in_proj_weight`, [[3 * width, width]], linear);
        add(`${p}.attn.in_proj_bias`, `${q}.attn.in_proj_bias`, [[3 * width]]);
      } else {
        const qkv = ['q_proj', 'k_proj', 'v_proj'];
        add(`${p}.attn.in_proj_weight`, qkv.map((n) => `${q}.self_attn.${n}.weight`), qkv.map(() => [width, width]), packedLinear);
        add(`${p}.attn.in_proj_bias`, qkv.map((n) => `${q}.self_attn.${n}.bias`), qkv.map(() => w), packedBias);
      }
      const attnOut = o ? `${q}.attn.out_proj` : `${q}.self_attn.out_proj`;
      add(`${p}.attn.out_proj.weight`, `${attnOut}.weight`, [[width, width]], linear);
      add(`${p}.attn.out_proj.bias`, `${attnOut}.bias`, [w]);
      for (const [ln, hf] of [['ln_1', 'layer_norm1'], ['ln_2', 'layer_norm2']]) {
        add(`${p}.${ln}.weight`, `${q}.${o ? ln : hf}.weight`, [w]);
        add(`${p}.${ln}.bias`, `${q}.${o ? ln : hf}.bias`, [w]);
      }
      add(`${p}.mlp.c_fc.weight`, `${q}.mlp.${o ? 'c_fc' : 'fc1'}.weight`, [[4 * width, width]], linear);
      add(`${p}.mlp.c_fc.bias`, `${q}.mlp.${o ? 'c_fc' : 'fc1'}.bias`, [[4 * width]]);
      add(`${p}.mlp.c_proj.weight`, `${q}.mlp.${o ? 'c_proj' : 'fc2'}.weight`, [[width, 4 * width]], linear);
      add(`${p}.mlp.c_proj.bias`, `${q}.mlp.${o ? 'c_proj' : 'fc2'}.bias`, [w]);
    }
  };
  const W = [c.width];
  const T = [c.textWidth];
  const tokens = (c.imageSize / c.patch) ** 2 + 1;
  add('visual.conv1.weight', o ? 'visual.conv1.weight' : 'vision_model.embeddings.patch_embedding.weight', [[c.width, 3, c.patch, c.patch]], patchEmbedding);
  add('visual.class_embedding', o ? 'visual.class_embedding' : 'vision_model.embeddings.class_embedding', [W]);
  add('visual.positional_embedding', o ? 'visual.positional_embedding' : 'vision_model.embeddings.position_embedding.weight', [[tokens, c.width]]);
  add('visual.ln_pre.weight', o ? 'visual.ln_pre.weight' : 'vision_model.pre_layrnorm.weight', [W]);
  add('visual.ln_pre.bias', o ? 'visual.ln_pre.bias' : 'vision_model.pre_layrnorm.bias', [W]);
  blocks('visual.transformer', o ? 'visual.transformer' : 'vision_model', c.width, c.layers);
  add('visual.ln_post.weight', o ? 'visual.ln_post.weight' : 'vision_model.post_layernorm.weight', [W]);
  add('visual.ln_post.bias', o ? 'visual.ln_post.bias' : 'vision_model.post_layernorm.bias', [W]);
  if (o) add('visual.proj', 'visual.proj', [[c.width, c.embedDim]]);
  else add('visual.proj', 'visual_projection.weight', [[c.embedDim, c.width]], linear);
  add('token_embedding.weight', o ? 'token_embedding.weight' : 'text_model.embeddings.token_embedding.weight', [[c.vocabSize, c.textWidth]]);
  add('positional_embedding', o ? 'positional_embedding' : 'text_model.embeddings.position_embedding.weight', [[c.contextLength, c.textWidth]]);
  blocks('transformer', o ? 'transformer' : 'text_model', c.textWidth, c.textLayers);
  add('ln_final.weight', o ? 'ln_final.weight' : 'text_model.final_layer_norm.weight', [T]);
  add('ln_final.bias', o ? 'ln_final.bias' : 'text_model.final_layer_norm.bias', [T]);
  if (o) add('text_projection', 'text_projection', [[c.textWidth, c.embedDim]]);
  else add('text_projection', 'text_projection.weight', [[c.embedDim, c.textWidth]], linear);
  add('logit_scale', 'logit_scale', [[]]);
  return s;
}

/** Load a CLIP ViT checkpoint (safetensors) of either naming as a MiniCLIP. */
export function loadClipWeights(file: string, opts: LoadClipOptions = {}): LoadedClip {
  if (/\.(pt|pth|bin)$/.test(file)) {
    throw new Error(`${file} is a PyTorch pickle: convert it once with 'python3 scripts/pt-to-safetensors.py ${file}' (needs PyTorch) and load the .safetensors file.`);
  }
  const st = readSafetensors(file);
  if (st.metadata.format === 'rvpt-miniclip') throw new Error(`${file} is one of this project's own checkpoints: load it with loadCheckpoint().`);
  const tensors = stripPrefixes(st.tensors);
  const naming = detectNaming(tensors, file);
  const config = inferClipConfig(tensors, naming, file, opts);
  const src = sources(config, naming);
  const expected: Record<string, number[]> = {};
  for (const s of Object.values(src)) s.from.forEach((n, i) => (expected[n] = s.shapes[i]));
  // logit_scale is [] in OpenAI's files and [1] in some exports.
  if (tensors.logit_scale?.shape.length === 1 && tensors.logit_scale.shape[0] === 1) expected.logit_scale = [1];
  checkShapes(file, tensors, expected, 'The file is not a complete CLIP ViT of one consistent size; re-export it.');
  const params: ParamMap = {};
  for (const [ours, s] of Object.entries(src)) {
    const value = tf.tidy(() => {
      const inputs = s.from.map((n) => tf.tensor(tensors[n].data as Float32Array, tensors[n].shape, 'float32'));
      const v = s.convert(inputs);
      return ours === 'logit_scale' ? tf.reshape(v, []) : v;
    });
    params[ours] = ownedVariable(value, true);
  }
  const used = new Set(Object.keys(expected));
  const unused = Object.keys(tensors).filter((k) => !used.has(k));
  return { model: new MiniCLIP(config, params), naming, unused, file };
}
