/**
 * The zero-shot classifier as CLIP builds it (and as CleanCLIP and BadCLIP evaluate): per class, the mean of the
 * L2-normalised text embeddings of the filled templates, normalised again; an image's class is the argmax of its
 * normalised embedding against them.
 */
import * as tf from '@tensorflow/tfjs-core';
import { MiniCLIP } from './clip';
import { l2normalize, matMulBT } from './layers';
import { TextTokenizer } from './tokenizer';
import { ZERO_SHOT_TEMPLATES, fillTemplate } from '../data/captions';

/** [C, E] normalised class embeddings (a plain tensor the caller disposes). */
export function zeroShotClassifier(model: MiniCLIP, tokenizer: TextTokenizer, classNames: string[], templates: string[] = ZERO_SHOT_TEMPLATES): tf.Tensor2D {
  return tf.tidy(() => {
    const texts = classNames.flatMap((c) => templates.map((t) => fillTemplate(t, c)));
    const emb = l2normalize(model.encodeText(tokenizer.encodeBatch(texts, model.config.contextLength)));
    const perClass = tf.mean(tf.reshape(emb, [classNames.length, templates.length, -1]), 1) as tf.Tensor2D;
    return l2normalize(perClass);
  });
}

/** Class indices of image embeddings [B, E] (not normalised) against normalised class embeddings [C, E]. */
export function zeroShotPredict(embeddings: tf.Tensor2D, classifier: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => tf.argMax(matMulBT(l2normalize(embeddings), classifier), 1) as tf.Tensor1D);
}


/**
 * Class probabilities [B, C]: the softmax of the model's logit scale times the cosine between each normalised image
 * embedding and the class embeddings, as CLIP's zero-shot `logits_per_image.softmax(-1)`.
 */
export function zeroShotProbabilities(embeddings: tf.Tensor2D, classifier: tf.Tensor2D, logitScale: tf.Scalar): tf.Tensor2D {
  return tf.tidy(() => tf.softmax(tf.mul(matMulBT(l2normalize(embeddings), classifier), logitScale)) as tf.Tensor2D);
}
