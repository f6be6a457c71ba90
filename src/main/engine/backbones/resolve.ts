/**
 * Backbones are tfjs LayersModel folders addressed by a path relative to a base location
 * (e.g. `teachable-machine-models/<name>/model.json` under https://storage.googleapis.com/).
 * Resolution order: the cache in the home folder, each mirror (a folder used in place, or
 * a URL downloaded into the cache), then the canonical base URL. Downloads are verified
 * (weights sizes against the manifest, and SHA-256 when the registry knows it) and land
 * atomically, so a killed download never leaves a half-written model in the cache.
 */
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';

export interface ResolveOptions {
  cacheDir: string;
  mirrors: string[];
  /** Canonical base URL; omitted for local-only backbones. */
  canonicalBase?: string;
  /** Known SHA-256 per file name (model.json, weight shards), when the registry has them. */
  sha256?: Record<string, string>;
  fetchImpl?: typeof fetch;
  onProgress?: (p: { file: string; done: number; total: number }) => void;
}

export interface ResolvedModel {
  /** Absolute path of model.json on disk. */
  modelJson: string;
  /** Where it came from: 'cache', a mirror folder or URL, or the canonical base. */
  source: string;
}

interface WeightsGroup {
  paths: string[];
  weights: { name: string; shape: number[]; dtype: string; quantization?: { dtype: string } }[];
}

const DTYPE_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2 };

function isUrl(s: string): boolean {
  return /^https?:\/\//i.test(s);
}

/** Bytes the manifest says the weights need; a download of another size is corrupt. */
export function expectedWeightBytes(manifest: WeightsGroup[]): number {
  let total = 0;
  for (const group of manifest) {
    for (const w of group.weights) {
      const dtype = w.quantization?.dtype ?? w.dtype;
      total += w.shape.reduce((a, b) => a * b, 1) * (DTYPE_BYTES[dtype] ?? 4);
    }
  }
  return total;
}

function readManifest(modelJsonPath: string): WeightsGroup[] {
  const json = JSON.parse(fs.readFileSync(modelJsonPath, 'utf8'));
  if (!json.modelTopology || !Array.isArray(json.weightsManifest)) {
    throw new Error(`${modelJsonPath} is not a tfjs LayersModel (no modelTopology/weightsManifest)`);
  }
  return json.weightsManifest as WeightsGroup[];
}

/** True when model.json and every weight file listed are present with the right total size. */
export function isCompleteModelFolder(modelJsonPath: string): boolean {
  try {
    const manifest = readManifest(modelJsonPath);
    const dir = path.dirname(modelJsonPath);
    let bytes = 0;
    for (const g of manifest) for (const p of g.paths) bytes += fs.statSync(path.join(dir, decodeURIComponent(p))).size;
    return bytes === expectedWeightBytes(manifest);
  } catch {
    return false;
  }
}

function sha256(buf: Buffer): string {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

async function download(url: string, opts: ResolveOptions, file: string): Promise<Buffer> {
  const f = opts.fetchImpl ?? fetch;
  let res: Response;
  try {
    res = await f(url);
  } catch (err) {
    throw new Error(`could not reach ${url} (${(err as Error).message})`);
  }
  if (!res.ok) throw new Error(`${url} answered HTTP ${res.status}`);
  const buf = Buffer.from(await res.arrayBuffer());
  opts.onProgress?.({ file, done: buf.length, total: buf.length });
  const want = opts.sha256?.[file];
  if (want && sha256(buf) !== want) throw new Error(`checksum mismatch for ${url}: expected sha256 ${want}, got ${sha256(buf)}`);
  return buf;
}

/** Download a model folder from `base` + `relDir` into the cache, atomically. */
async function downloadInto(base: string, relDir: string, target: string, opts: ResolveOptions): Promise<void> {
  const baseUrl = new URL(relDir.replace(/\/?$/, '/'), base.replace(/\/?$/, '/'));
  const tmp = `${target}.partial-${process.pid}-${Date.now()}`;
  fs.mkdirSync(tmp, { recursive: true });
  try {
    const modelJson = await download(new URL('model.json', baseUrl).href, opts, 'model.json');
    fs.writeFileSync(path.join(tmp, 'model.json'), modelJson);
    const manifest = readManifest(path.join(tmp, 'model.json'));
    for (const g of manifest) {
      for (const p of g.paths) {
        const buf = await download(new URL(p, baseUrl).href, opts, p);
        fs.writeFileSync(path.join(tmp, decodeURIComponent(p)), buf);
      }
    }
    if (!isCompleteModelFolder(path.join(tmp, 'model.json'))) {
      throw new Error(`downloaded weights from ${baseUrl.href} do not match the sizes in model.json`);
    }
    fs.rmSync(target, { recursive: true, force: true });
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.renameSync(tmp, target);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * Find `relDir` (a folder holding model.json, relative to any base) and return the
 * model.json path on disk. Throws one error listing every place tried and what to do.
 */
export async function resolveModelFolder(relDir: string, opts: ResolveOptions): Promise<ResolvedModel> {
  const clean = relDir.replace(/^\/+|\/+$/g, '').replace(/\/model\.json$/, '');
  if (clean.split('/').includes('..')) throw new Error(`Model path "${relDir}" must not contain "..".`);
  const cached = path.join(opts.cacheDir, ...clean.split('/'));
  const tried: string[] = [];
  if (isCompleteModelFolder(path.join(cached, 'model.json'))) return { modelJson: path.join(cached, 'model.json'), source: 'cache' };
  tried.push(`cache ${cached}: not there`);

  const bases = [...opts.mirrors, ...(opts.canonicalBase ? [opts.canonicalBase] : [])];
  for (const base of bases) {
    if (isUrl(base)) {
      try {
        await downloadInto(base, clean, cached, opts);
        return { modelJson: path.join(cached, 'model.json'), source: base };
      } catch (err) {
        tried.push(`${base}: ${(err as Error).message}`);
      }
    } else {
      const candidate = path.join(base, ...clean.split('/'), 'model.json');
      if (isCompleteModelFolder(candidate)) return { modelJson: candidate, source: base };
      tried.push(`${candidate}: ${fs.existsSync(candidate) ? 'incomplete (weights missing or wrong size)' : 'not there'}`);
    }
  }
  throw new Error(
    `Backbone "${clean}" was not found. Tried: ${tried.join('; ')}. ` +
      `Point --models-mirror (or FINETUNE_MODELS_MIRROR) at a folder that holds "${clean}/model.json", or connect to the internet once so it can be downloaded into the cache.`,
  );
}
