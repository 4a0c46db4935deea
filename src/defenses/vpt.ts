/** VPT: deep visual prompt tuning with cross-entropy only, i.e. RVPT with alpha = 0 (the paper's Table 8 ablation). */
import { Defense } from './defense';
import { PROMPT_TUNING_PARAMS, PromptTuningConfig, RVPT_DEFAULTS, promptTuning } from './rvpt';

export const VPT_DEFAULTS: PromptTuningConfig = { ...RVPT_DEFAULTS, alpha: 0 };

export const VPT: Defense = {
  name: 'VPT',
  perDataset: true,
  params: PROMPT_TUNING_PARAMS,
  run: (ctx, config) => promptTuning('VPT', ctx, { ...VPT_DEFAULTS, ...(config as Partial<PromptTuningConfig>) }),
};
