/**
 * The verdict rules of the fair setting, fixed in code before its defense runs and
 * used by REPRODUCTION.md whatever they give. A claim is a list of cases, each a check on measured medians:
 * - reproduced: every case holds; partly: at least half of them; not reproduced: fewer;
 * - untestable: the setting lacks what the claim needs (a precondition of the paper fails, or the cells are missing
 *   because the defense they ablate does not work at its defaults), which is never "not reproduced".
 * Every verdict carries its n (cases, seeds) and the test-set size.
 */
export const VERDICT_RULES = {
  /** RVPT's median ASR at most this per attack (%): the paper's Table 1 claim, with BadCLIP the hardest. */
  rvptAsr: { BadNet: 5, Blended: 5, BadCLIP: 10 } as Record<string, number>,
  /** RVPT's median CA at least No defense's minus this (points). */
  caDrop: 2,
  /** VPT's BadCLIP ASR at least this many times RVPT's (the FR loss is what removes BadCLIP). */
  vptOverRvpt: 3,
  /** The Linear Probe "removes" an attack when its median ASR is at most this (%): the paper's largest, 5.5. */
  probeRemoves: 5.5,
  /** Share of a claim's cases that makes it "partly". */
  partly: 0.5,
};

export type RuleVerdict = 'reproduced' | 'partly' | 'not reproduced' | 'untestable';

export interface RuleCase {
  what: string;
  holds: boolean;
}

export interface ClaimVerdict {
  claim: string;
  verdict: RuleVerdict;
  cases: RuleCase[];
  /** Seeds per cell and test images, printed with the verdict. */
  seeds: number;
  testSize: number | null;
  why?: string;
}

/** The rule applied to a claim's cases; `untestable` (with the reason) wins over any count. */
export function judge(claim: string, cases: RuleCase[], seeds: number, testSize: number | null, untestable?: string): ClaimVerdict {
  if (untestable) return { claim, verdict: 'untestable', cases, seeds, testSize, why: untestable };
  if (!cases.length) return { claim, verdict: 'untestable', cases, seeds, testSize, why: 'no measured cell' };
  const held = cases.filter((c) => c.holds).length;
  const verdict: RuleVerdict = held === cases.length ? 'reproduced' : held >= VERDICT_RULES.partly * cases.length ? 'partly' : 'not reproduced';
  return { claim, verdict, cases, seeds, testSize };
}

type Cells = Record<string, Record<string, { asr: number; ca: number; n?: unknown; seeds?: unknown } | undefined>>;

function size(cells: Cells): { seeds: number; testSize: number | null } {
  const any = Object.values(cells).flatMap((m) => Object.values(m)).find(Boolean);
  return { seeds: typeof any?.seeds === 'number' ? any.seeds : 1, testSize: typeof any?.n === 'number' ? any.n : null };
}

/** RVPT's Table 1 claim: low ASR on BadNet, Blended and BadCLIP at a small CA cost, and VPT keeping BadCLIP. */
export function rvptClaim(cells: Cells, untestable?: string): ClaimVerdict {
  const nd = cells['No defense'] ?? {};
  const rv = cells.RVPT ?? {};
  const vpt = cells.VPT ?? {};
  const cases: RuleCase[] = [];
  for (const [attack, bound] of Object.entries(VERDICT_RULES.rvptAsr)) {
    const r = rv[attack];
    const n = nd[attack];
    if (!r || !n) continue;
    cases.push({ what: `${attack}: RVPT ASR ${r.asr.toFixed(2)}% <= ${bound}%`, holds: r.asr <= bound });
    cases.push({ what: `${attack}: RVPT CA ${r.ca.toFixed(2)}% >= No defense ${n.ca.toFixed(2)} - ${VERDICT_RULES.caDrop}`, holds: r.ca >= n.ca - VERDICT_RULES.caDrop });
  }
  if (vpt.BadCLIP && rv.BadCLIP) {
    cases.push({ what: `BadCLIP: VPT ASR ${vpt.BadCLIP.asr.toFixed(2)}% >= ${VERDICT_RULES.vptOverRvpt} x RVPT's ${rv.BadCLIP.asr.toFixed(2)}%`, holds: vpt.BadCLIP.asr >= VERDICT_RULES.vptOverRvpt * rv.BadCLIP.asr });
  }
  const s = size(cells);
  return judge('RVPT removes BadNet and Blended (ASR <= 5%) and BadCLIP (<= 10%) keeping CA within 2 points; VPT keeps BadCLIP (>= 3x RVPT)', cases, s.seeds, s.testSize, untestable);
}

/** The Linear Probe's claim: it removes every attack but BadCLIP (the trigger lies beside the class features). */
export function probeClaim(cells: Cells, untestable?: string): ClaimVerdict {
  const lp = cells['Linear Probe'] ?? {};
  const cases = Object.entries(lp)
    .filter(([a, c]) => a !== 'BadCLIP' && c)
    .map(([a, c]) => ({ what: `${a}: Linear Probe ASR ${c!.asr.toFixed(2)}% <= ${VERDICT_RULES.probeRemoves}%`, holds: c!.asr <= VERDICT_RULES.probeRemoves }));
  const s = size(cells);
  return judge(`a clean linear probe removes every attack but BadCLIP (ASR <= ${VERDICT_RULES.probeRemoves}%)`, cases, s.seeds, s.testSize, untestable);
}

/** The cost table's memory claim: RVPT's peak process memory is below CleanCLIP's. */
export function memoryClaim(rows: Record<string, { rssBytes: number }> | undefined): ClaimVerdict {
  const c = rows?.CleanCLIP;
  const r = rows?.RVPT;
  const cases = c && r ? [{ what: `peak RSS: RVPT ${(r.rssBytes / 2 ** 20).toFixed(0)} MiB < CleanCLIP ${(c.rssBytes / 2 ** 20).toFixed(0)} MiB`, holds: r.rssBytes < c.rssBytes }] : [];
  return judge("RVPT needs less memory than CleanCLIP (peak process RSS of each run)", cases, 1, null);
}

/** One markdown line per verdict, with its cases, n and test-set size. */
export function verdictLine(v: ClaimVerdict): string {
  const mark = { reproduced: '✅ reproduced', partly: '🟡 partly', 'not reproduced': '❌ not reproduced', untestable: '⬜ untestable' }[v.verdict];
  const held = v.cases.filter((c) => c.holds).length;
  const n = `${held}/${v.cases.length} cases; ${v.seeds} seed${v.seeds === 1 ? '' : 's'} per cell${v.testSize !== null ? `; test set ${v.testSize} images` : ''}`;
  return `- **${mark}**: ${v.claim} (${n}${v.why ? `; ${v.why}` : ''}): ${v.cases.map((c) => `${c.what}${c.holds ? '' : ' (fails)'}`).join('; ')}`;
}
