/** "No defense": the backdoored model as a zero-shot classifier, unchanged (the tables' first row). */
import { Defense, zeroShotClassifierOf } from './defense';

export const NoDefense: Defense = {
  name: 'No defense',
  perDataset: false,
  params: [],
  async run(ctx) {
    const { model, tokenizer } = ctx;
    return {
      classifier: (classNames, textPrefix, templates) => zeroShotClassifierOf(model, tokenizer, classNames, textPrefix, undefined, templates),
      cost: { seconds: 0, peakBytes: 0, rssBytes: 0, tunableParams: 0, totalParams: model.numParams(), samples: 0 },
      history: {},
      dispose: () => undefined,
    };
  },
};
