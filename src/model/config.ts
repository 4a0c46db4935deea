/** MiniCLIP hyper-parameters: the shape of OpenAI CLIP (clip/model.py), scaled to a laptop. */
export interface CLIPConfig {
  /** Input images are imageSize x imageSize RGB in [0, 1]; normalisation happens inside the model. */
  imageSize: number;
  /** Patch side: the conv1 kernel and stride. */
  patch: number;
  /** Image tower width, depth and heads (ViT-B/32: 768, 12, 12). */
  width: number;
  layers: number;
  heads: number;
  /** Shared image-text embedding size (ViT-B/32: 512). */
  embedDim: number;
  /** Text tower (ViT-B/32: 512 wide, 12 layers, 8 heads, context 77). */
  textWidth: number;
  textLayers: number;
  textHeads: number;
  contextLength: number;
  vocabSize: number;
  /** Per-channel normalisation applied to [0,1] pixels (CLIP's mean/std by default). */
  mean: [number, number, number];
  std: [number, number, number];
}

export const CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

export function numPatches(c: CLIPConfig): number {
  return (c.imageSize / c.patch) ** 2;
}

export function validateConfig(c: CLIPConfig): void {
  const bad = (field: string, why: string) => {
    throw new Error(`Invalid model config: '${field}' = ${JSON.stringify((c as unknown as Record<string, unknown>)[field])}: ${why}`);
  };
  if (c.imageSize % c.patch !== 0) bad('patch', `must divide imageSize ${c.imageSize}`);
  if (c.width % c.heads !== 0) bad('heads', `must divide width ${c.width}`);
  if (c.textWidth % c.textHeads !== 0) bad('textHeads', `must divide textWidth ${c.textWidth}`);
  for (const k of ['imageSize', 'patch', 'width', 'layers', 'heads', 'embedDim', 'textWidth', 'textLayers', 'textHeads', 'contextLength', 'vocabSize'] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) bad(k, 'must be a positive integer');
  }
}

/** The WASM backend's heap: 4 GiB (32-bit addresses). */
export const WASM_HEAP_BYTES = 4 * 1024 ** 3;

/**
 * About how many bytes contrastive training of a model of `config` takes at `batch` pairs: the weights, their
 * gradients and AdamW's two moments (4 floats a parameter), and the activations the backward pass keeps (per block,
 * about ten per token and width, and the attention maps). An estimate within a factor of two, to refuse a size that
 * cannot fit before allocating it, not a measurement.
 */
export function trainingBytes(c: CLIPConfig, batch: number): number {
  const g = c.imageSize / c.patch;
  const tokens = g * g + 1;
  const block = (w: number) => 12 * w * w + 13 * w;
  const params = c.patch * c.patch * 3 * c.width + (tokens + 1) * c.width + c.layers * block(c.width) + 4 * c.width + c.width * c.embedDim + c.vocabSize * c.textWidth + c.contextLength * c.textWidth + c.textLayers * block(c.textWidth) + c.textWidth * c.embedDim;
  const perPair = c.layers * (tokens * c.width * 10 + c.heads * tokens * tokens * 2) + c.textLayers * (c.contextLength * c.textWidth * 10 + c.textHeads * c.contextLength * c.contextLength * 2);
  return 4 * (4 * params + batch * perPair);
}
