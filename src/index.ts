/**
 * rvpt-notebooks: the library behind the notebooks and the `rvpt` CLI. This is its public surface, listed by name and
 * grouped down the pipeline (data -> model -> attacks -> defenses -> metrics -> experiments); anything not named here
 * is internal to its module and may change.
 */

// Backend
export { initBackend, backendInfo, BACKENDS } from './backend';
export type { BackendName, BackendInfo } from './backend';

// Model: MiniCLIP, deep visual prompts, tokenizers
export { CLIP_MEAN, CLIP_STD, numPatches } from './model/config';
export type { CLIPConfig } from './model/config';
export { MiniCLIP, clipLoss } from './model/clip';
export { initDeepPrompts, promptLayers, promptParams, disposePrompts } from './model/prompts';
export type { DeepPrompts, PromptSpec } from './model/prompts';
export { l2normalize, matMulBT, layerNorm } from './model/layers';
export { residualBlock } from './model/transformer';
export { countParams, disposeParams } from './model/params';
export { WordTokenizer } from './model/tokenizer';
export type { TextTokenizer } from './model/tokenizer';
export { ClipTokenizer } from './model/clipTokenizer';

// Data
export { numImages, pixelsPerImage, subset, concatDatasets, classCounts } from './data/dataset';
export type { ImageDataset } from './data/dataset';
export { loadManifest, addManifestDirs, validateManifest } from './data/manifest';
export type { DataManifest } from './data/manifest';
export { loadSplit, loadShots, loadEvalSplit, exampleImages, testSetNames } from './data/load';
export { kShot, sample, splitOff } from './data/splits';
export { TEMPLATES, ZERO_SHOT_TEMPLATES, captionFor } from './data/captions';
export { CaptionCorpus } from './data/corpus';
export { DEFAULT_AUGMENT, augmentBatch } from './data/augment';
export type { AugmentConfig } from './data/augment';
export { decodeImage, loadImageFolder } from './data/imageFolder';
export { loadEmoji } from './data/emoji';
export { loadWeb, loadWebManifest, webItems, webCaptions, withNameCaptions } from './data/web';
export type { WebManifest, WebItem } from './data/web';
export { withCoarseCaptions, CLASS_WORDS, COARSE_GROUP } from './data/coarse';

// Training
export { pretrain } from './train/pretrain';
export type { PretrainConfig, TrainHistory } from './train/pretrain';
export { AdamW, SGD, warmupCosine } from './train/optim';

// Attacks
export { ATTACKS, ATTACK_NAMES, makeTrigger } from './attacks/registry';
export type { TriggerFactory } from './attacks/registry';
export type { Trigger, TriggerContext, PrepareContext } from './attacks/trigger';
export { poisonDataset, triggerDataset } from './attacks/poison';

// Defenses
export { DEFENSES, getDefense } from './defenses/registry';
export type { Defense, DefenseContext, Defended, DefenseCost, Classifier } from './defenses/defense';
export { RVPT, RVPT_DEFAULTS, featureRepelling, promptTuning, startPromptTuning, promptTuningSteps, FR_TOKENS } from './defenses/rvpt';
export type { PromptTuningRun } from './defenses/rvpt';
export type { PromptTuningConfig, FrToken } from './defenses/rvpt';
export { VPT } from './defenses/vpt';
export { CleanCLIP } from './defenses/cleanclip';
export { LinearProbe } from './defenses/linearProbe';
export { evaluateDefended } from './metrics/defended';

// Metrics
export { zeroShotClassifier, zeroShotPredict, zeroShotProbabilities } from './model/zeroShot';
export { zeroShotAccuracy, predict, predictWith, accuracy } from './metrics/zeroshot';
export { imageBatch, rowsBatch } from './data/batches';
export { backdoorMetrics, TEST_TRIGGER_SEED } from './metrics/backdoor';
export type { BackdoorMetrics } from './metrics/backdoor';
export { perturbationResistivity, promptDisplacement, standardPerturbations, triggerPerturbation } from './metrics/pr';
export type { Perturbation } from './metrics/pr';

// Checkpoints and real CLIP weights
export { readSafetensors, writeSafetensors } from './checkpoint/safetensors';
export { saveCheckpoint, loadCheckpoint, modelFromSafetensors, promptsFromSafetensors } from './checkpoint/checkpoint';
export { loadClipWeights } from './checkpoint/clipWeights';

// Experiments: profiles, cached runs, the tables, the figures, the report
export { PROFILES, BUILT_IN_PROFILES, getProfile, loadProfileFile, profileDatasets, VIT_B32 } from './experiments/profiles';
export type { Profile } from './experiments/profiles';
export { ensurePretrained, pretrainData, cleanAccuracy, checkpointCA } from './experiments/pretrainRun';
export { ensureBackdoored, prepareTrigger, targetIndex, testSet } from './experiments/backdoorRun';
export type { BackdoorResult } from './experiments/backdoorRun';
export { runCell, defenseConfig, defenseSeed } from './experiments/defenseRun';
export type { CellResult } from './experiments/defenseRun';
export { externalWeights } from './experiments/externalWeights';
export { METHODS, tableMarkdown, resultsDir } from './experiments/tables';
export type { ResultsTable } from './experiments/tables';
export { paperTableSpecs, runTable, availableAttacks, costAttack, costTable } from './experiments/paperTables';
export { noDefenseSpec, runNoDefense } from './experiments/noDefense';
export { PAPER_TABLE1, PAPER_TABLE2, PAPER_TABLE3, PAPER_COST } from './experiments/paperNumbers';
export { clsAttention, attentionOverlay, knnShares, embeddingFigure, ABLATION_GRID, ablationSetting, ablationFigure } from './experiments/analysis';
export { figurePR, figureAttention, figureEmbeddings, figureAblations, figureAttacks, analysisSample, analysisTest, computePR, computeAttention, computeEmbeddings, computeDisplacement, displacementRows, runAblations, ablationSummary, ensurePrompts, tsne2d, umap2d } from './experiments/analysis';
export type { Claim, PRResult, AttentionResult, EmbeddingResult, AblationPoint, DisplacementResult } from './experiments/analysis';
export { ensureSupervisedViT } from './experiments/supervised';
export { RVPT_TARGET, atTargetAsr, withinCaBudget, inRvptTarget } from './metrics/target';
export { checkNotebookNumbers, compareNumbers, claimsJudgeable, claimsMarkdown, noDefenseAsr, BACKDOOR_TAKES_ASR } from './experiments/notebookChecks';
export { reproductionReport, writeReproductionReport } from './experiments/report';
export { checkPreconditions, preconditionsMarkdown, writePreconditions, PRECONDITION_BOUNDS } from './experiments/preconditions';
export type { Preconditions } from './experiments/preconditions';
export { VERDICT_RULES, judge, rvptClaim, probeClaim, memoryClaim, verdictLine } from './experiments/verdictRules';
export { slideSpecs, writeSlides } from './experiments/slides';
export type { Slide } from './experiments/slides';
export { writeLabAssets, LAB_ATTACKS, LAB_HELDOUT, LAB_GALLERY_PER_CLASS } from './experiments/labAssets';
export type { LabManifest, LabFile, LabImageSet } from './experiments/labAssets';
export type { ClaimVerdict, RuleVerdict } from './experiments/verdictRules';
export { tableSeeds, withDefenseSeed, seedCell } from './experiments/paperTables';
export { HEADLINE_PROFILE } from './experiments/tables';
export { benchTrainStep, benchClipScale } from './experiments/bench';

// Notebooks, figures and utilities
export { notebookSetup, showFigure, showMarkdown, markdownTable, batchMode } from './viz/notebook';
export { lineFigure, barFigure, smooth } from './viz/plotly';
export type { Figure } from './viz/plotly';
export { saveFigure } from './viz/render';
export { gridPng, datasetImages, classRows, triggerRows, concatImages, splitImages } from './viz/images';
export { makeRng } from './util/rng';
export type { Rng } from './util/rng';
export { projectRoot, cacheDir, useShippedCheckpoints, shippedCheckpointsOn } from './util/fsutil';
export { provenance } from './util/provenance';
