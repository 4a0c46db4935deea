/** "No defense": the backdoored model as a zero-shot classifier, unchanged (the tables' first row). */
import * as tf from '@tensorflow/tfjs-core';
import { l2normalize, matMulBT } from '../model/layers';
import { zeroShotClassifier } from '../metrics/zeroshot';
import { prefixedTemplates } from '../metrics/backdoor';
import { ZERO_SHOT_TEMPLATES } from '../data/captions';
import { Defense } from './defense';

export const NoDefense: Defense = {
  name: 'No defense',
  perDataset: false,
  async run(ctx) {
    const { model, tokenizer } = ctx;
    return {
      classifier(classNames, textPrefix) {
        const cls = zeroShotClassifier(model, tokenizer, classNames, textPrefix ? prefixedTemplates(textPrefix) : ZERO_SHOT_TEMPLATES);
        return {
          predict: (images) => tf.tidy(() => tf.argMax(matMulBT(l2normalize(model.encodeImage(images).embedding), cls), 1) as tf.Tensor1D),
          dispose: () => cls.dispose(),
        };
      },
      cost: { seconds: 0, peakBytes: 0, rssBytes: 0, tunableParams: 0, totalParams: model.numParams(), samples: 0 },
      history: {},
      dispose: () => undefined,
    };
  },
};
