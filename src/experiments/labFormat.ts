/**
 * What the browser lab's lab.json holds (written by labAssets.ts, read by web/src/lab.ts). A module without imports,
 * so that the page can read the format tag without bundling the Node side that writes the files.
 */
export interface LabFile {
  file: string;
  sha256: string;
  bytes: number;
}

export interface LabImageSet {
  dataset: string;
  /** First image of the set in images.bin, and how many. */
  offset: number;
  n: number;
  labels: number[];
  /** Each image's row in the dataset's test split (the shots: in its tuning split). */
  rows: number[];
}

/** lab.json's format: the page refuses another (a folder built by an older or newer lab). */
export const LAB_FORMAT = 'rvpt-lab/1';

export interface LabManifest {
  format: typeof LAB_FORMAT;
  profile: string;
  modelConfig: unknown;
  seed: number;
  imageSize: number;
  datasets: Record<string, { title: string; classNames: string[]; templates: string[]; target: number }>;
  images: LabFile & { sets: Record<string, LabImageSet> };
  clean: LabFile & { metrics: unknown };
  attacks: Record<string, { model: LabFile & { metrics: unknown }; prompts: { VPT: LabFile; RVPT: LabFile }; trigger: Record<string, unknown>; patch?: LabFile }>;
  defenses: { VPT: Record<string, unknown>; RVPT: Record<string, unknown> };
  provenance: unknown;
}
