/** The `datasets:*` verbs over the dataset pipeline (import, snapshots, thumbnails, preview). */
import type { Api, DatasetSummary } from '../../shared/contract';
import { AppError } from '../../shared/errors';
import type { AppContext } from './context';
import type { Store } from '../store';
import { importDataset } from '../dataset/import';
import { listSnapshots, loadSnapshot, absPath, type DatasetSnapshot } from '../dataset/snapshot';
import { DecodeCache } from '../dataset/cache';
import { cacheSide, decodeSquare, toDataUrl } from '../dataset/decode';
import { centreCrop } from '../dataset/crop';
import { augmentImage, DEFAULT_AUGMENT } from '../dataset/augment';
import sharp from 'sharp';

type DatasetVerbs = 'datasets:import' | 'datasets:cancelImport' | 'datasets:list' | 'datasets:get' | 'datasets:thumbnails' | 'datasets:preview';

function summary(s: DatasetSnapshot): DatasetSummary {
  return {
    id: s.id,
    name: s.name,
    root: s.root,
    layout: s.layout,
    createdAt: s.createdAt,
    classes: s.classes,
    counts: s.report.counts,
    total: s.files.length,
    warnings: s.report.warnings.length,
    options: s.options,
  };
}

export function createDatasetServices(ctx: AppContext, store: Store): Pick<Api, DatasetVerbs> {
  let running: AbortController | null = null;
  const squareOf = async (snap: DatasetSnapshot, index: number, side: number) => {
    const f = snap.files[index];
    if (!f) throw new AppError('not_found', `Image ${index} is not in snapshot ${snap.id} (it has ${snap.files.length}).`);
    const cache = new DecodeCache(ctx.paths.decodeCache, side);
    const hit = cache.get(f.hash);
    if (hit) return hit;
    const { pixels } = await decodeSquare(absPath(snap, f), side);
    cache.put(f.hash, pixels);
    return pixels;
  };
  return {
    'datasets:import': async (args) => {
      if (running) throw new AppError('busy', 'An import is already running. Wait for it or cancel it.');
      running = new AbortController();
      const started = Date.now();
      let lastEmit = 0;
      try {
        const { snapshot, report } = await importDataset({
          ...args,
          datasetsDir: ctx.paths.datasets,
          decodeCacheDir: ctx.paths.decodeCache,
          signal: running.signal,
          onProgress: (done, total) => {
            const now = Date.now();
            if (now - lastEmit < 150 && done < total) return;
            lastEmit = now;
            const rate = done / Math.max(0.001, (now - started) / 1000);
            ctx.events.emit('datasets:progress', { phase: 'importing', done, total, etaSeconds: rate > 0 ? (total - done) / rate : null });
          },
        });
        store.upsertSnapshot({ id: snapshot.id, name: snapshot.name, root: snapshot.root, summary: summary(snapshot), createdAt: snapshot.createdAt });
        return report;
      } finally {
        running = null;
      }
    },
    'datasets:cancelImport': async () => {
      const was = !!running;
      running?.abort();
      return { cancelled: was };
    },
    'datasets:list': async () => listSnapshots(ctx.paths.datasets).map(summary),
    'datasets:get': async ({ id }) => {
      const s = loadSnapshot(ctx.paths.datasets, id);
      return { ...summary(s), report: s.report };
    },
    'datasets:thumbnails': async ({ id, className, split, offset, limit, size }) => {
      const snap = loadSnapshot(ctx.paths.datasets, id);
      const classIndex = className === undefined ? -1 : snap.classes.indexOf(className);
      if (className !== undefined && classIndex < 0) throw new AppError('not_found', `No class "${className}" in ${id}. Classes: ${snap.classes.join(', ')}.`);
      const matching = snap.files.map((f, index) => ({ f, index })).filter(({ f }) => (classIndex < 0 || f.label === classIndex) && (!split || f.split === split));
      const page = matching.slice(offset, offset + limit);
      const side = 256;
      const items = await Promise.all(
        page.map(async ({ f, index }) => {
          const sq = await squareOf(snap, index, side);
          const buf = await sharp(Buffer.from(sq.buffer, sq.byteOffset, sq.length), { raw: { width: side, height: side, channels: 3 } })
            .resize(size, size)
            .jpeg({ quality: 75 })
            .toBuffer();
          return { index, path: f.rel, label: snap.classes[f.label], split: f.split, src: `data:image/jpeg;base64,${buf.toString('base64')}` };
        }),
      );
      return { total: matching.length, items };
    },
    'datasets:preview': async ({ id, index, n, seed, size, augment }) => {
      const snap = loadSnapshot(ctx.paths.datasets, id);
      const i = index ?? Math.max(0, snap.files.findIndex((f) => f.split === 'train'));
      const side = cacheSide({ size, cropFraction: 0.875 });
      const sq = await squareOf(snap, i, side);
      const cfg = augment ?? DEFAULT_AUGMENT;
      const images = await Promise.all(Array.from({ length: n }, (_, k) => toDataUrl(augmentImage(sq, side, size, cfg, seed, k, i), size, size)));
      return { path: snap.files[i].rel, original: await toDataUrl(centreCrop(sq, side, size), size, size), images };
    },
  };
}
