/**
 * Fig. 6: the last block's class-token attention over the patches, clean and triggered, backdoored against RVPT.
 */
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { MiniCLIP } from '../../model/clip';
import { DeepPrompts, disposePrompts } from '../../model/prompts';
import { imageRows, numImages, pixelsPerImage } from '../../data/dataset';
import { imageBatch } from '../../data/batches';
import { TEST_TRIGGER_SEED } from '../../metrics/backdoor';
import { clsAttention } from '../../metrics/attention';
import { viridis } from '../../viz/colormap';
import { Figure } from '../../viz/plotly';
import { ensureBackdoored, targetIndex } from '../backdoorRun';
import { Profile } from '../profiles';
import { Log, quietLog, analysisSample, ensurePrompts, analysisTest, writeAnalysisFigure, figureAttacks, Claim, mean } from './common';

export { clsAttention };


/** The image upscaled, with the attention map (bicubic-upsampled by sharp, colour-mapped) laid over it. */
export async function attentionOverlay(image: Float32Array, size: number, att: Float32Array, out = 96): Promise<Buffer> {
  const g = Math.round(Math.sqrt(att.length));
  const max = Math.max(...att);
  const min = Math.min(...att);
  const heat = await sharp(Buffer.from(Array.from(att, (v) => Math.round((255 * (v - min)) / (max - min || 1)))), { raw: { width: g, height: g, channels: 1 } })
    .resize(out, out, { kernel: 'cubic' })
    .extractChannel(0) // sharp writes grey input back as sRGB otherwise
    .raw()
    .toBuffer();
  // Opacity follows attention too, so the image shows through where the class token does not look.
  const rgba = Buffer.alloc(out * out * 4);
  for (let i = 0; i < out * out; i++) {
    const t = heat[i] / 255;
    const [r, gg, b] = viridis(t);
    rgba.set([r, gg, b, Math.round(30 + 170 * t)], i * 4);
  }
  const base = await sharp(Buffer.from(Array.from(image, (v) => Math.round(255 * Math.max(0, Math.min(1, v))))), { raw: { width: size, height: size, channels: 3 } })
    .resize(out, out, { kernel: 'nearest' })
    .png()
    .toBuffer();
  return sharp(base).composite([{ input: rgba, raw: { width: out, height: out, channels: 4 } }]).png().toBuffer();
}

export interface AttentionResult {
  attacks: string[];
  /** PNG (data URI) of the grid and its labels. */
  png: string;
  rows: string[];
  /** Each column's true class. */
  cols: string[];
  /**
   * Mean share of the class token's attention on the patches the trigger changes (patch triggers only), on the clean
   * and on the triggered image, per attack and model: the rise is what the trigger draws.
   */
  triggerShare: Record<string, Record<string, { clean: number; triggered: number } | null>>;
}

/** Each overlay's side and the gap between them in the grid, in pixels. */
const ATTENTION_TILE = 96;
const GRID_GAP = 4;

/** The grid: for each attack, rows clean / triggered x (backdoored, RVPT); columns: test images. */
export async function computeAttention(profile: Profile, attacks: string[], dataset = profile.datasets.main, perAttack = 6, log: Log = quietLog): Promise<AttentionResult> {
  const tiles: Buffer[] = [];
  const rows: string[] = [];
  const triggerShare: AttentionResult['triggerShare'] = {};
  // Each column's true class: every attack shows the same test images (the first ones not of the target class).
  let columns: string[] = [];
  const out = ATTENTION_TILE;
  for (const attack of attacks) {
    const bd = await ensureBackdoored(profile, attack, { dataset, log });
    const rvpt = await ensurePrompts(profile, bd, 'RVPT', dataset, log);
    try {
      const test = await analysisTest(profile, dataset, analysisSample(profile));
      const target = targetIndex(dataset);
      // The first images whose class is not the target, so the trigger has work to do.
      const idx: number[] = [];
      for (let i = 0; i < numImages(test) && idx.length < perAttack; i++) if (test.labels[i] !== target) idx.push(i);
      columns = idx.map((i) => test.classNames[test.labels[i]]);
      const per = pixelsPerImage(test);
      const clean = tf.tidy(() => tf.concat(idx.map((i) => imageBatch(test, i, i + 1))) as tf.Tensor4D);
      const trig = bd.trigger.apply(clean, { seed: TEST_TRIGGER_SEED, offset: 0 });
      const trigPixels = trig.dataSync() as Float32Array;
      const changed = patchesChanged(clean, trig, profile.model.patch);
      triggerShare[attack] = {};
      for (const [name, prompts] of [['backdoored', undefined], ['RVPT', rvpt]] as const) {
        for (const [kind, x, pixels] of [['clean', clean, null], ['triggered', trig, trigPixels]] as const) {
          const maps = clsAttention(bd.model, x, prompts);
          rows.push(`${attack}: ${name}, ${kind}`);
          for (let k = 0; k < idx.length; k++) {
            const img = pixels ? pixels.subarray(k * per, (k + 1) * per) : imageRows(test, idx[k], idx[k] + 1);
            tiles.push(await attentionOverlay(Float32Array.from(img), test.size, maps[k], out));
          }
          const share = changed.every((c) => c.length) ? mean(maps.map((m, k) => changed[k].reduce((s, j) => s + m[j], 0))) : null;
          if (share === null) triggerShare[attack][name] = null;
          else triggerShare[attack][name] = { ...(triggerShare[attack][name] ?? { clean: 0, triggered: 0 }), [kind]: share };
        }
      }
      tf.dispose([clean, trig]);
    } finally {
      disposePrompts(rvpt);
      bd.model.dispose();
    }
  }
  const cols = perAttack;
  const gap = GRID_GAP;
  const W = cols * (out + gap);
  const H = rows.length * (out + gap);
  const grid = await sharp({ create: { width: W, height: H, channels: 3, background: '#ffffff' } })
    .composite(tiles.map((t, i) => ({ input: t, left: (i % cols) * (out + gap), top: Math.floor(i / cols) * (out + gap) })))
    .png()
    .toBuffer();
  return { attacks, png: `data:image/png;base64,${grid.toString('base64')}`, rows, cols: columns, triggerShare };
}

/** Per image, the patch indices the trigger changed (a patch trigger touches few; a global one touches all). */
function patchesChanged(clean: tf.Tensor4D, trig: tf.Tensor4D, patch: number): number[][] {
  const d = tf.tidy(() => tf.max(tf.abs(tf.sub(trig, clean)), 3));
  const [n, s] = clean.shape;
  const g = s / patch;
  const v = d.dataSync();
  d.dispose();
  return Array.from({ length: n }, (_, k) => {
    const hit: number[] = [];
    for (let py = 0; py < g; py++) for (let px = 0; px < g; px++) {
      let any = false;
      for (let y = 0; y < patch && !any; y++) for (let x = 0; x < patch && !any; x++) any = v[(k * s + py * patch + y) * s + px * patch + x] > 1e-3;
      if (any) hit.push(py * g + px);
    }
    // A trigger that changes every patch (Blended, WaNet, ISSBA) has no "trigger region" to measure.
    return hit.length < g * g ? hit : [];
  });
}

export function attentionFigure(r: AttentionResult): Figure {
  const tile = ATTENTION_TILE + GRID_GAP;
  const label = (text: string, x: number, y: number, anchor: Record<string, string>) => ({ text, xref: 'paper', yref: 'paper', x, y, showarrow: false, font: { size: 11 }, ...anchor });
  return {
    data: [
      { type: 'image', source: r.png, hoverinfo: 'skip' },
      // The overlay's colour scale (viridis; each map scaled from its own least to its most attended patch).
      {
        type: 'scatter',
        mode: 'markers',
        x: [null],
        y: [null],
        showlegend: false,
        hoverinfo: 'skip',
        marker: { color: [0], cmin: 0, cmax: 1, colorscale: 'Viridis', showscale: true, colorbar: { title: { text: 'attention<br>(per image:<br>0 least,<br>1 most)', side: 'top' }, thickness: 14, len: 0.5, y: 0.5, tickvals: [0, 0.5, 1] } },
      },
    ],
    layout: {
      title: { text: `Class-token attention, last block (${r.attacks.join(', ')}); columns: each image's true class`, x: 0.02, xanchor: 'left' },
      // Fixed to the grid: the labels in pixel coordinates must not widen the axes' autorange.
      xaxis: { visible: false, range: [0, r.cols.length * tile], constrain: 'domain' },
      yaxis: { visible: false, range: [r.rows.length * tile, 0], scaleanchor: 'x', constrain: 'domain' },
      margin: { l: 230, r: 110, t: 80, b: 10 },
      annotations: [
        // In the image's pixel coordinates (y grows downwards): left of each row, above each column.
        ...r.rows.map((text, i) => ({ ...label(text, -0.01, (i + 0.5) * tile - GRID_GAP / 2, { xanchor: 'right' }), xref: 'x domain', yref: 'y' })),
        ...r.cols.map((text, j) => ({ ...label(text, (j + 0.5) * tile - GRID_GAP / 2, 0, { yanchor: 'bottom' }), xref: 'x', yref: 'y' })),
      ],
    },
  };
}

export async function figureAttention(profile: Profile, attacks = figureAttacks(profile, ['BadCLIP', 'BadNet']), log: Log = quietLog) {
  const t0 = Date.now();
  const result = await computeAttention(profile, attacks, profile.datasets.main, 6, log);
  const fig = attentionFigure(result);
  const height = 90 + result.rows.length * 100;
  const claims = attentionClaims(result);
  const saved = await writeAnalysisFigure(profile, 'fig6-attention', fig, 'Attention maps', { attacks }, (Date.now() - t0) / 1000, { width: 900, height }, claims);
  return { result, fig, saved, height, claims };
}

export function attentionClaims(r: AttentionResult): Claim[] {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  return Object.entries(r.triggerShare)
    .filter(([, s]) => s.backdoored && s.RVPT)
    .map(([attack, s]) => {
      const [b, v] = [s.backdoored!, s.RVPT!];
      return {
        claim: `${attack}: the trigger draws the backdoored model's class token to its patches; RVPT's less`,
        ours: `attention on the trigger's patches, clean → triggered image: backdoored ${pct(b.clean)} → ${pct(b.triggered)}, RVPT ${pct(v.clean)} → ${pct(v.triggered)}`,
        holds: b.triggered > b.clean && v.triggered - v.clean < b.triggered - b.clean,
      };
    });
}
