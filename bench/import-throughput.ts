/**
 * Import + decode + resize throughput (issue 3): each data set is imported into a fresh temp
 * home twice, cold (empty decode cache: every image read, hashed, decoded and resized to the
 * 256 x 256 cache square) then warm (cache hits), and all its images are then loaded through
 * ImageSource (eval views at 224 from the cache). Reports images/s by wall clock and CPU ms
 * per image (user + system over all threads), which depends far less on what else runs on
 * the machine; `idleEstimate` = cores / CPU seconds per image. `cacheReadOnly` reads the cache
 * files and nothing else: the floor the warm path is compared with; `decodeOnly` decodes the
 * same bytes from memory (no read, hash or cache write), so cold minus it is the import's own
 * cost. Target: >= 150 images/s cold on hymenoptera (~500 x 375 JPEGs) on 2 cores. Writes
 * bench/results/import-throughput.json.
 *
 * Run: node --import tsx bench/import-throughput.ts [hymenoptera|imagenette-small ...] [--pool N] [--vips-threads N]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { importDataset } from '../src/main/dataset/import';
import { openImageSource } from '../src/main/dataset/image-source';
import { DECODE_SETTINGS, decodeSquare } from '../src/main/dataset/decode';
import { DecodeCache, mapPool } from '../src/main/dataset/cache';
import { absPath } from '../src/main/dataset/snapshot';
import { MINUS_ONE_TO_ONE, type Preprocessing } from '../src/shared/preprocessing';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const sharedDir = process.env.FINETUNE_SHARED ?? path.resolve(root, '../shared');
// --pool N and --vips-threads N override DECODE_SETTINGS, to profile the thread layout.
const argv = process.argv.slice(2);
const flag = (name: string) => {
  const i = argv.indexOf(name);
  if (i < 0) return undefined;
  const v = Number(argv.splice(i, 2)[1]);
  if (!(v >= 1)) throw new Error(`${name} needs a number >= 1`);
  return v;
};
const pool = flag('--pool') ?? DECODE_SETTINGS.pool;
const vipsThreads = flag('--vips-threads') ?? DECODE_SETTINGS.vipsThreadsPerImage;
sharp.concurrency(vipsThreads);
const names = argv.length ? argv : ['hymenoptera', 'imagenette-small'];
const preprocessing: Preprocessing = { size: 224, cropFraction: 0.875, trainCrop: 'random-resized-crop', scaling: MINUS_ONE_TO_ONE, channels: 3 };
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const load = () => os.loadavg().map((x) => round(x, 2));

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; seconds: number; cpuSeconds: number; loadAverage: number[] }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await fn();
  const seconds = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  return { value, seconds, cpuSeconds: (c.user + c.system) / 1e6, loadAverage: load() };
}

function rates(images: number, t: { seconds: number; cpuSeconds: number; loadAverage: number[] }) {
  return {
    images,
    seconds: round(t.seconds, 2),
    imagesPerSecond: round(images / t.seconds),
    cpuMsPerImage: round((1000 * t.cpuSeconds) / images, 2),
    idleEstimateImagesPerSecond: round((os.cpus().length * images) / t.cpuSeconds),
    loadAverageAfter: t.loadAverage,
  };
}

async function benchDataset(name: string) {
  const dir = path.join(sharedDir, 'datasets', name);
  const home = fs.mkdtempSync(path.join(os.tmpdir(), `finetune-bench-import-${name}-`));
  const opts = { path: dir, datasetsDir: path.join(home, 'datasets'), decodeCacheDir: path.join(home, 'cache', 'decoded'), concurrency: pool };
  try {
    const cold = await timed(() => importDataset(opts));
    const { snapshot, report } = cold.value;
    const warm = await timed(() => importDataset(opts));
    // Every image of every split through ImageSource, in training-size batches.
    const loadAll = async () => {
      let n = 0;
      for (const split of ['train', 'val', 'test'] as const) {
        const src = await openImageSource({ snapshot, split, preprocessing, cacheDir: opts.decodeCacheDir, concurrency: pool });
        for (let i = 0; i < src.length; i += 32) {
          const idx = Array.from({ length: Math.min(32, src.length - i) }, (_, k) => i + k);
          n += (await src.load(idx, { epoch: 0, augment: false })).length / (224 * 224 * 3);
        }
      }
      return n;
    };
    const warmLoad = await timed(loadAll);
    // The floor for the warm path: just reading every cache file once.
    const cache = new DecodeCache(opts.decodeCacheDir, 256);
    const cacheFiles = snapshot.files.map((f) => cache.file(f.hash));
    const readOnly = await timed(async () => {
      for (const f of cacheFiles) fs.readFileSync(f);
      return cacheFiles.length;
    });
    // Decoding alone (bytes already in memory, nothing hashed or written): the cold import's
    // CPU ms per image minus this one is what the import adds around sharp.
    const bytes = snapshot.files.map((f) => fs.readFileSync(absPath(snapshot, f)));
    const decodeOnly = await timed(async () => {
      await mapPool(bytes, pool, (b) => decodeSquare(b, 256));
      return bytes.length;
    });
    const sizes = new Map<string, number>();
    for (const f of snapshot.files) sizes.set(`${f.width}x${f.height}`, (sizes.get(`${f.width}x${f.height}`) ?? 0) + 1);
    return {
      dataset: name,
      images: report.total,
      skipped: report.skipped.length,
      commonSizes: [...sizes].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([s, n]) => `${s} (${n})`),
      coldImport: rates(report.total, cold),
      decodeOnly: rates(decodeOnly.value, decodeOnly),
      warmImport: rates(report.total, warm),
      warmImageSourceLoad: rates(warmLoad.value, warmLoad),
      cacheReadOnly: rates(readOnly.value, readOnly),
    };
  } finally {
    fs.rmSync(home, { recursive: true, force: true });
  }
}

const loadAverageAtStart = load();
const results = [];
for (const name of names) {
  const r = await benchDataset(name);
  console.log(`${name}: ${r.images} images; cold import ${r.coldImport.imagesPerSecond} img/s (${r.coldImport.cpuMsPerImage} CPU ms/img, ~${r.coldImport.idleEstimateImagesPerSecond} img/s on idle cores; decoding alone ${r.decodeOnly.cpuMsPerImage} CPU ms/img); warm import ${r.warmImport.imagesPerSecond} img/s; warm load ${r.warmImageSourceLoad.imagesPerSecond} img/s (cache reads alone ${r.cacheReadOnly.imagesPerSecond}); load ${r.coldImport.loadAverageAfter.join(' ')}`);
  results.push(r);
}
const report = {
  bench: 'import-throughput',
  date: new Date().toISOString(),
  machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, node: process.version, sharp: sharp.versions.sharp, vips: sharp.versions.vips, loadAverageAtStart, loadAverageAtEnd: load() },
  settings: { ...DECODE_SETTINGS, pool, vipsThreadsPerImage: vipsThreads, uvThreadpoolSize: Number(process.env.UV_THREADPOOL_SIZE ?? 4) },
  target: { coldImagesPerSecond: 150, on: 'hymenoptera (~500x375 JPEGs) to 224 (cache square 256)' },
  results,
};
fs.mkdirSync(path.join(root, 'bench', 'results'), { recursive: true });
fs.writeFileSync(path.join(root, 'bench', 'results', 'import-throughput.json'), `${JSON.stringify(report, null, 2)}\n`);
