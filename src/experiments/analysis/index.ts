/**
 * The paper's analysis figures at our scale, each computed from cached models and written to the profile's results
 * folder (figures/ for the headline profile) as PNG (Chromium), HTML and a JSON sidecar; one module per figure:
 *   pr.ts          Fig. 4, Perturbation Resistivity across layers
 *   attention.ts   Fig. 6, last-layer class-token attention
 *   embeddings.ts  Fig. 7, t-SNE and UMAP of clean and triggered embeddings
 *   ablations.ts   Fig. 3, ASR and CA against shots, alpha, b, depth and margin
 */
export { ANALYSIS_CODE_VERSION, analysisSample, analysisTest, ensurePrompts, writeAnalysisFigure, figureAttacks } from './common';
export type { Claim } from './common';
export { computePR, computeDisplacement, displacementRows, prFigure, figurePR, prClaims } from './pr';
export type { PRResult, DisplacementResult } from './pr';
export { clsAttention, attentionOverlay, computeAttention, attentionFigure, figureAttention, attentionClaims } from './attention';
export type { AttentionResult } from './attention';
export { tsne2d, umap2d, computeEmbeddings, embeddingFigure, figureEmbeddings, embeddingClaims, knnShares } from './embeddings';
export type { EmbeddingResult } from './embeddings';
export { ABLATION_GRID, ablationSetting, runAblations, ablationFigure, figureAblations, ablationClaims, ablationSummary } from './ablations';
export type { AblationPoint } from './ablations';
