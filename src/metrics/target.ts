/**
 * The paper's result for RVPT, as this project judges every run against it: ASR at most 5% with CA at most 2 points
 * below the same backdoored model undefended (docs/PAPER-NOTES.md §2). One definition for the report and the lab.
 */
export const RVPT_TARGET = { asr: 5, caDrop: 2 };

/**
 * The target's two halves, ends included: ASR (%) at most 5, and CA change (points, from No defense) at least -2.
 * The slack is for float differences of two-decimal CAs: 14.01 - 16.01 is -2.0000000000000018.
 */
export const atTargetAsr = (asr: number): boolean => asr <= RVPT_TARGET.asr + 1e-9;
export const withinCaBudget = (caChange: number): boolean => caChange >= -RVPT_TARGET.caDrop - 1e-9;

/** Whether a run with this ASR and CA change lies in the target region. */
export const inRvptTarget = (asr: number, caChange: number): boolean => atTargetAsr(asr) && withinCaBudget(caChange);
