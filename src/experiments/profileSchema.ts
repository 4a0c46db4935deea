/**
 * What a profile may hold, checked before any work starts: every field's type and range, and no unknown key (a
 * misspelt key would otherwise run the defaults and give a result that looks valid). A failure names the file, the
 * field, the value, what is allowed and, for a misspelling, the nearest valid key. zod does the walking; the messages
 * are ours.
 */
import { z } from 'zod';
import { nearestKey } from '../util/nearest';

export { nearestKey };

const whole = (min: number) => z.number().int().min(min);
const positive = z.number().positive().finite();
const pair = z.tuple([z.number().finite(), z.number().finite()]);

const augment = z.object({ scale: pair, ratio: pair, flip: z.number().min(0).max(1) }).strict();

const model = z
  .object({
    imageSize: whole(1),
    patch: whole(1),
    width: whole(1),
    layers: whole(1),
    heads: whole(1),
    embedDim: whole(1),
    textWidth: whole(1),
    textLayers: whole(1),
    textHeads: whole(1),
    contextLength: whole(2),
    vocabSize: whole(4),
    mean: z.tuple([z.number(), z.number(), z.number()]),
    std: z.tuple([positive, positive, positive]),
  })
  .strict()
  .superRefine((m, ctx) => {
    if (m.imageSize % m.patch) ctx.addIssue({ code: 'custom', path: ['patch'], message: `must divide imageSize (${m.imageSize}); it is ${m.patch}` });
    if (m.width % m.heads) ctx.addIssue({ code: 'custom', path: ['heads'], message: `must divide width (${m.width}); it is ${m.heads}` });
    if (m.textWidth % m.textHeads) ctx.addIssue({ code: 'custom', path: ['textHeads'], message: `must divide textWidth (${m.textWidth}); it is ${m.textHeads}` });
  });

// Steps may be 0 only where the checkpoints come from a weights file (the `paper` profile); checked below.
const training = {
  batch: whole(1),
  steps: whole(0),
  lr: positive,
  warmupSteps: whole(0),
  weightDecay: z.number().min(0).finite(),
  augment: augment.nullable(),
  seed: whole(0),
  workers: z.union([z.literal(1), z.literal(2)]).optional(),
};

const backdoorFields = {
  rate: z.number().gt(0).lt(1),
  emojiRate: z.number().gt(0).lt(1).optional(),
  emojiRepeat: whole(1).optional(),
  poisonPerRepeat: z.boolean().optional(),
  poisonSource: z.enum(['task', 'web']).optional(),
};
const backdoor = z.object({ ...training, ...backdoorFields }).strict();
const backdoorOverride = z.object({ ...training, ...backdoorFields }).partial().strict();

export const PROFILE_SCHEMA = z
  .object({
    name: z.string().regex(/^[\w.-]+$/, "letters, digits, '.', '-', '_'"),
    model,
    datasets: z.object({ main: z.string().min(1), emoji: z.string().min(1), more: z.array(z.string().min(1)).optional(), web: z.string().min(1).optional() }).strict(),
    pretrain: z
      .object({
        ...training,
        mainLimit: whole(1).nullable(),
        emojiRepeat: whole(1),
        attributeCaptions: z.boolean().optional(),
        mainCaptions: z.enum(['class', 'coarse']).optional(),
        namedShare: z.number().min(0).max(0.1).optional(),
        emojiCaptions: z.enum(['class', 'names']).optional(),
        webRepeat: whole(1).optional(),
      })
      .strict(),
    backdoor,
    shots: whole(1),
    seeds: z.array(whole(0)).min(1).optional(),
    defenses: z.record(z.record(z.unknown())),
    datasetBackdoor: z.record(backdoorOverride).optional(),
    attackBackdoor: z.record(backdoorOverride).optional(),
    triggers: z.record(z.record(z.unknown())).optional(),
    evalLimit: whole(1).nullable(),
    benchBatch: whole(1),
    weightsFile: z.string().min(1).optional(),
    jobs: whole(1).optional(),
    manifests: z.array(z.string()).optional(),
    supervised: z.object({ steps: whole(1), batch: whole(1), lr: positive, seed: whole(0) }).partial().strict().optional(),
    analysis: z
      .object({ sample: whole(2), ablationEpochs: whole(1), ablationEvalLimit: whole(1), ablationAttacks: z.array(z.string()), ablationGrid: z.record(z.array(z.number().finite()).min(1)) })
      .partial()
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((p, ctx) => {
    if (p.backdoor.poisonSource === 'web' && !p.datasets.web) ctx.addIssue({ code: 'custom', path: ['backdoor', 'poisonSource'], message: "is 'web' but datasets.web names no web corpus; add one (e.g. \"web\") or poison 'task'" });
    if (p.weightsFile) return;
    for (const part of ['pretrain', 'backdoor'] as const) {
      if (p[part].steps === 0) ctx.addIssue({ code: 'custom', path: [part, 'steps'], message: `is 0; it must be at least 1 (0 steps would cache an untrained model as the profile's); only a profile with a weightsFile skips training` });
    }
  });

/** The object's keys at `path` of a schema (for the "known keys" of an unknown-key message). */
function knownKeys(schema: z.ZodTypeAny, path: (string | number)[]): string[] {
  let s: z.ZodTypeAny = schema;
  for (const p of path) {
    while (s instanceof z.ZodEffects || s instanceof z.ZodOptional || s instanceof z.ZodNullable) s = s instanceof z.ZodEffects ? s.innerType() : s.unwrap();
    if (s instanceof z.ZodObject) s = s.shape[p as string];
    else if (s instanceof z.ZodRecord) s = s.valueSchema;
    else return [];
    if (!s) return [];
  }
  while (s instanceof z.ZodEffects || s instanceof z.ZodOptional || s instanceof z.ZodNullable) s = s instanceof z.ZodEffects ? s.innerType() : s.unwrap();
  return s instanceof z.ZodObject ? Object.keys(s.shape) : [];
}

const show = (v: unknown) => (v === undefined ? 'missing' : JSON.stringify(v));

/** One line per problem: the field, its value, what is allowed (and, for an unknown key, the nearest known one). */
export function profileProblems(value: unknown): string[] {
  const r = PROFILE_SCHEMA.safeParse(value);
  if (r.success) return [];
  const at = (path: (string | number)[]) => path.reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), value);
  return r.error.issues.map((i) => {
    if (i.code === 'unrecognized_keys') {
      const known = knownKeys(PROFILE_SCHEMA, i.path);
      return i.keys
        .map((k) => {
          const field = [...i.path, k].join('.');
          const near = nearestKey(k, known);
          return `field '${field}' is not a profile field${near ? `; did you mean '${[...i.path, near].join('.')}'?` : ''} (known here: ${known.join(', ')})`;
        })
        .join('\n');
    }
    const field = i.path.join('.') || '(the whole profile)';
    const got = show(at(i.path));
    if (i.code === 'custom') return `field '${field}' ${i.message}`;
    if (i.code === 'too_small') return `field '${field}' is ${got}; it must be ${i.type === 'array' ? `a list of at least ${i.minimum}` : `${i.inclusive ? 'at least' : 'above'} ${i.minimum}`}`;
    if (i.code === 'too_big') return `field '${field}' is ${got}; it must be ${i.inclusive ? 'at most' : 'below'} ${i.maximum}`;
    if (i.code === 'invalid_type' && i.expected === 'integer') return `field '${field}' is ${got}; it must be a whole number`;
    if (i.code === 'invalid_type') return `field '${field}' is ${got}; it must be ${i.expected === 'undefined' ? 'left out' : `a ${i.expected}`}`;
    return `field '${field}' is ${got}: ${i.message}`;
  });
}
