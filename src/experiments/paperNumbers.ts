/**
 * The paper's numbers, as the paper and its slide deck give them (docs/PAPER-NOTES.md): the targets the
 * reproduction report (REPRODUCTION.md) sets ours beside. ASR and CA in %.
 */
export type PaperCell = { asr: number; ca: number } | null;

const c = (asr: number, ca: number): PaperCell => ({ asr, ca });

/** Table 1: ImageNet-1K, ViT-B/32. */
export const PAPER_TABLE1: Record<string, Record<string, PaperCell>> = {
  'No defense': { BadNet: c(82.69, 63.04), Blended: c(98.52, 62.64), ISSBA: c(60.01, 61.72), WaNet: c(87.18, 62.42), TrojVQA: c(99.75, 62.81), BadCLIP: c(99.83, 61.33) },
  CleanCLIP: { BadNet: c(23.79, 57.91), Blended: c(0.25, 57.69), ISSBA: c(15.62, 59.2), WaNet: c(11.1, 59.07), TrojVQA: c(85.64, 58.22), BadCLIP: c(89.7, 57.55) },
  'Linear Probe': { BadNet: c(3.05, 59.64), Blended: c(5.52, 59.69), ISSBA: c(0.08, 59.69), WaNet: c(0.65, 59.66), TrojVQA: null, BadCLIP: c(99.7, 59.33) },
  // Table 8 (VPT without the FR loss) has only the BadCLIP cell.
  VPT: { BadCLIP: c(98.14, 64.32) },
  RVPT: { BadNet: c(0.05, 62.76), Blended: c(0.02, 62.36), ISSBA: c(0.01, 61.92), WaNet: c(0.03, 62.48), TrojVQA: c(0.11, 62.63), BadCLIP: c(2.76, 61.81) },
};

/** Table 2: Caltech101 and OxfordPets (our emoji dataset plays their role). */
export const PAPER_TABLE2: Record<string, Record<string, Record<string, PaperCell>>> = {
  Caltech101: {
    'No defense': { BadNet: c(91.38, 93.06), Blended: c(92.69, 93.41), WaNet: c(63.21, 92.86) },
    CleanCLIP: { BadNet: c(36.87, 91.18), Blended: c(1.14, 90.77), WaNet: c(9.35, 91.54) },
    'Linear Probe': { BadNet: c(1.22, 93.62), Blended: c(12.82, 93.41), WaNet: c(1.04, 93.45) },
    RVPT: { BadNet: c(0.0, 94.02), Blended: c(0.0, 94.34), WaNet: c(0.08, 93.89) },
  },
  OxfordPets: {
    'No defense': { BadNet: c(86.83, 82.91), Blended: c(99.8, 85.1), WaNet: c(87.97, 83.93) },
    CleanCLIP: { BadNet: c(25.72, 82.49), Blended: c(4.17, 83.41), WaNet: c(12.61, 81.1) },
    'Linear Probe': { BadNet: c(16.05, 77.74), Blended: c(2.63, 77.63), WaNet: c(2.21, 77.71) },
    RVPT: { BadNet: c(0.3, 88.6), Blended: c(0.64, 88.87), WaNet: c(1.59, 88.53) },
  },
};

/** Table 3: purified on ImageNet, tested on domain-shifted sets (our other emoji artists play their role). */
export const PAPER_TABLE3: Record<string, Record<string, Record<string, PaperCell>>> = {
  'ImageNet-V2': {
    'No defense': { BadNet: c(86.55, 55.39), Blended: c(99.04, 54.83), BadCLIP: c(99.89, 53.49) },
    CleanCLIP: { BadNet: c(31.38, 50.95), Blended: c(0.42, 50.96), BadCLIP: c(92.04, 50.6) },
    RVPT: { BadNet: c(0.04, 53.85), Blended: c(0.02, 53.77), BadCLIP: c(3.43, 52.53) },
  },
  'ImageNet-A': {
    'No defense': { BadNet: c(92.97, 31.47), Blended: c(99.89, 31.22), BadCLIP: c(99.97, 30.8) },
    CleanCLIP: { BadNet: c(59.11, 25.71), Blended: c(3.18, 27.1), BadCLIP: c(98.18, 25.52) },
    RVPT: { BadNet: c(1.64, 16.52), Blended: c(0.17, 16.84), BadCLIP: c(12.84, 16.84) },
  },
  'ImageNet-R': {
    'No defense': { BadNet: c(66.63, 67.11), Blended: c(97.94, 66.06), BadCLIP: c(99.69, 65.49) },
    CleanCLIP: { BadNet: c(32.99, 61.81), Blended: c(2.54, 60.69), BadCLIP: c(89.03, 60.93) },
    RVPT: { BadNet: c(0.76, 58.39), Blended: c(0.09, 58.46), BadCLIP: c(6.75, 57.37) },
  },
  'ImageNet-S': {
    'No defense': { BadNet: c(92.11, 41.73), Blended: c(97.16, 41.86), BadCLIP: c(99.88, 40.19) },
    CleanCLIP: { BadNet: c(26.54, 34.62), Blended: c(0.26, 34.82), BadCLIP: c(85.62, 34.44) },
    RVPT: { BadNet: c(0.02, 35.17), Blended: c(0.01, 35.34), BadCLIP: c(1.67, 34.06) },
  },
};

/** The efficiency table (the slide deck's last "Table 1"; the paper's Table 9). */
export const PAPER_COST = {
  CleanCLIP: { time: '3:53:02', memory: '17640 MB (GPU)', tunable: '126 M', samples: '250K' },
  'RVPT on ImageNet': { time: '45:05', memory: '3382 MB (GPU)', tunable: '0.34 M', samples: '16 K' },
  'RVPT on OxfordPets': { time: '2:19', memory: '1010 MB (GPU)', tunable: '0.34 M', samples: '0.6 K' },
};

/**
 * Which of the paper's shifted test sets each of our emoji renditions stands for: OpenMoji colour (another artist's
 * colour emoji) for ImageNet-V2, Noto (an artist never seen in pre-training) for ImageNet-R (renditions), OpenMoji's
 * black line art for ImageNet-Sketch. ImageNet-A (natural adversarial photos) has no analogue here.
 */
/** Our test set (emoji rendition, or at paper scale the shift's manifest) -> the paper's domain-shift column. */
export const SHIFT_ANALOGUE: Record<string, string> = {
  'openmoji-color': 'ImageNet-V2',
  noto: 'ImageNet-R',
  emojione: 'ImageNet-R',
  'openmoji-black': 'ImageNet-S',
  'imagenet-v2': 'ImageNet-V2',
  'imagenet-a': 'ImageNet-A',
  'imagenet-r': 'ImageNet-R',
  'imagenet-sketch': 'ImageNet-S',
};
