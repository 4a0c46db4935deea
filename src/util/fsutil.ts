/**
 * Atomic file writes: write a sibling temp file, check that every byte reached the disk, fsync, rename; a reader never
 * sees a half-written file, and a failed write leaves neither a temp file nor a short file behind.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as crypto from 'crypto';

export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  const tmp = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  let fd: number | undefined;
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fd = fs.openSync(tmp, 'w');
    // writeSync may write less than asked (a full disk): loop, and fail rather than rename a short file into place.
    for (let off = 0; off < buf.length; ) {
      const n = fs.writeSync(fd, buf, off, buf.length - off);
      if (n <= 0) throw new Error(`only ${off} of ${buf.length} bytes could be written`);
      off += n;
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    const size = fs.statSync(tmp).size;
    if (size !== buf.length) throw new Error(`${size} of ${buf.length} bytes reached the disk`);
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) fs.closeSync(fd);
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      // the temp file was never made (its folder could not be)
    }
    const err = e as NodeJS.ErrnoException;
    throw new Error(`Could not write ${file}: ${err.code ? `${err.code}, ` : ''}${err.message}. Check the free space and the permissions of ${path.dirname(file)}.`);
  }
}

export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n');
}

/**
 * A cached artifact: its bytes, then FILE.sha256 beside them, so that a later load can tell the bytes written from
 * damaged ones (a flipped byte in a JSON number or a float still parses, and would be trusted).
 */
export function writeCached(file: string, data: string | Uint8Array): void {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  writeFileAtomic(file, buf);
  writeFileAtomic(`${file}.sha256`, `${sha256(buf)}\n`);
}

/**
 * A cached artifact's bytes, checked against its FILE.sha256; throws, naming the file, when they differ (the caller
 * says so and rebuilds). Files cached before the hashes were recorded have none and are read as they are.
 */
export function readCached(file: string): Buffer {
  const buf = fs.readFileSync(file);
  const hashFile = `${file}.sha256`;
  if (fs.existsSync(hashFile)) {
    const recorded = fs.readFileSync(hashFile, 'utf8').trim();
    const now = sha256(buf);
    if (now !== recorded) throw new Error(`${file} changed since it was written (sha256 ${now.slice(0, 12)}, recorded ${recorded.slice(0, 12)})`);
  }
  return buf;
}

/** A cached JSON artifact, checked as readCached does. */
export function readCachedJson<T>(file: string): T {
  return JSON.parse(readCached(file).toString('utf8')) as T;
}

export function writeCachedJson(file: string, value: unknown): void {
  writeCached(file, JSON.stringify(value, null, 2) + '\n');
}

/** A JSON file the user wrote (`what` names it in the error: "Profile file", "Weights file", "Manifest"). */
export function readJsonFile<T = Record<string, unknown>>(file: string, what: string): T {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch (e) {
    throw new Error(`${what} ${file} is not valid JSON: ${(e as Error).message}`);
  }
}

export function sha256File(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

export function sha256(data: string | Uint8Array): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

/** The project root: the folder holding this package's package.json (works from src/ and dist/). */
export function projectRoot(): string {
  let dir = __dirname;
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj) && JSON.parse(fs.readFileSync(pj, 'utf8')).name === 'rvpt-notebooks') return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error('Cannot find the rvpt-notebooks project root above ' + __dirname);
    dir = up;
  }
}

/**
 * Teach mode: the models of the headline profile are committed in checkpoints/ (the same files `make reproduce`
 * writes to .cache/artifacts, sidecars and hashes included), so a seminar can skip the hour of training. Off by
 * default: `make reproduce` must train everything itself. On with useShippedCheckpoints() or RVPT_MODE=teach.
 */
let shippedOn = false;
export function useShippedCheckpoints(on = true): void {
  shippedOn = on;
}
export function shippedCheckpointsOn(): boolean {
  return shippedOn || process.env.RVPT_MODE === 'teach';
}
export function shippedDir(): string {
  return path.join(projectRoot(), 'checkpoints');
}

/**
 * Before a cached artifact is read: in teach mode, an artifact missing from the cache but committed in checkpoints/
 * is copied in with its companions (sidecar .json, .sha256), so the cache's own checks (recorded sha256, shapes)
 * judge the shipped file exactly as they judge one trained here.
 */
export function seedFromShipped(file: string): void {
  if (!shippedCheckpointsOn() || fs.existsSync(file)) return;
  const dir = shippedDir();
  const stem = path.basename(file).replace(/\.(safetensors|json)$/, '');
  if (!fs.existsSync(dir)) return;
  const parts = fs.readdirSync(dir).filter((f) => f === stem || f.startsWith(`${stem}.`));
  if (!parts.some((f) => f === path.basename(file))) return;
  for (const f of parts) {
    const to = path.join(path.dirname(file), f);
    if (!fs.existsSync(to)) writeFileAtomic(to, fs.readFileSync(path.join(dir, f)));
  }
}

/** Where derived artifacts (rendered images, checkpoints) are cached; RVPT_CACHE overrides. */
export function cacheDir(...parts: string[]): string {
  const base = process.env.RVPT_CACHE ?? path.join(projectRoot(), '.cache');
  return path.join(base, ...parts);
}

/**
 * A compiled script to start in another thread or process (workers run JavaScript): beside the caller when it runs
 * from dist/, else the build in dist/ (from sources under ts-jest). `rel` is relative to src/ and dist/.
 */
export function compiledScript(callerDir: string, rel: string): string {
  const here = path.join(callerDir, path.basename(rel));
  if (here.endsWith('.js') && fs.existsSync(here)) return here;
  const built = path.join(projectRoot(), 'dist', rel);
  if (fs.existsSync(built)) return built;
  throw new Error(`${rel} must be built first (${built} is missing): run \`npm run build\`.`);
}

/** A path as it enters a cache key: relative to the cache for files inside it, so that a moved cache keeps its keys. */
function relocatable(v: unknown): unknown {
  if (typeof v !== 'string' || !path.isAbsolute(v)) return v;
  const rel = path.relative(cacheDir(), v);
  return rel.startsWith('..') || path.isAbsolute(rel) ? v : `<cache>/${rel}`;
}

/**
 * The hash that names a cached result: of its inputs as JSON, with paths inside the cache made relative to it.
 * `legacy` is the hash with absolute paths, as keys were made before (see adoptLegacy).
 */
export function cacheKey(value: unknown, length: number): { key: string; legacy: string } {
  return { key: sha256(JSON.stringify(value, (_, v) => relocatable(v))).slice(0, length), legacy: sha256(JSON.stringify(value)).slice(0, length) };
}

/** A result cached under its legacy (absolute-path) key is renamed to its current key, not computed again. */
export function adoptLegacy(file: string, legacyFile: string): string {
  if (legacyFile !== file && !fs.existsSync(file) && fs.existsSync(legacyFile)) fs.renameSync(legacyFile, file);
  return file;
}
