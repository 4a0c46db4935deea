/** MiniCLIP: the two towers, the learnable temperature and the contrastive objective (CLIP's `CLIP` class). */
import * as tf from '@tensorflow/tfjs-core';
import { CLIPConfig, validateConfig } from './config';
import { l2normalize, matMulBT } from './layers';
import { ParamMap, countParams, disposeParams, ownedVariable } from './params';
import { TokenBatch, encodeText, initText } from './text';
import { VisionOptions, VisionOut, encodeImage, initVision } from './vision';

/** CLIP clamps the log temperature at ln(100). */
export const MAX_LOGIT_SCALE = Math.log(100);

export class MiniCLIP {
  constructor(
    readonly config: CLIPConfig,
    readonly params: ParamMap,
  ) {}

  static init(config: CLIPConfig, seed: number): MiniCLIP {
    validateConfig(config);
    const params: ParamMap = {};
    initVision(params, config, seed);
    initText(params, config, seed);
    params['logit_scale'] = ownedVariable(tf.scalar(Math.log(1 / 0.07)), true);
    return new MiniCLIP(config, params);
  }

  encodeImage(images: tf.Tensor4D, opts?: VisionOptions): VisionOut {
    return encodeImage(this.params, this.config, images, opts);
  }

  encodeText(tokens: TokenBatch): tf.Tensor2D {
    return encodeText(this.params, this.config, tokens);
  }

  /** exp(logit_scale), CLIP's 1/temperature. */
  logitScale(): tf.Scalar {
    return tf.tidy(() => tf.exp(tf.minimum(this.params['logit_scale'], MAX_LOGIT_SCALE)) as tf.Scalar);
  }

  /** Scaled cosine similarities [B_img, B_txt] between image and text embeddings. */
  logits(imageEmb: tf.Tensor2D, textEmb: tf.Tensor2D): tf.Tensor2D {
    return tf.mul(matMulBT(l2normalize(imageEmb), l2normalize(textEmb)), this.logitScale());
  }

  numParams(filter?: (name: string) => boolean): number {
    return countParams(this.params, filter);
  }

  dispose(): void {
    disposeParams(this.params);
  }
}

/** Symmetric InfoNCE over a batch of matched pairs (CLIP's loss): mean of image->text and text->image CE. */
export function clipLoss(logits: tf.Tensor2D): tf.Scalar {
  const n = logits.shape[0];
  const labels = tf.cast(tf.oneHot(tf.range(0, n, 1, "int32"), n), "float32") as tf.Tensor2D;
  const i2t = tf.losses.softmaxCrossEntropy(labels, logits);
  const t2i = tf.losses.softmaxCrossEntropy(labels, tf.transpose(logits));
  return tf.mul(tf.add(i2t, t2i), 0.5) as tf.Scalar;
}
