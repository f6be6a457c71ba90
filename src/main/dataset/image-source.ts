/**
 * What the engine reads: one split of a snapshot as fixed-size uint8 RGB images, decoded
 * once into the decode cache, augmented on the fly from (seed, epoch, index). Memory holds
 * a batch, never the data set: 50,000 images stream from the cache files.
 */
import type { Preprocessing } from '../../shared/preprocessing';
import type { ImageSource as EngineImageSource } from '../engine/data';
import { AppError, CancelledError } from '../../shared/errors';
import { DecodeCache, mapPool } from './cache';
import { DECODE_SETTINGS, cacheSide, centreCropInto, decodeSquare } from './decode';
import { augmentImage, type AugmentConfig } from './augment';
import { absPath, loadSnapshot, type DatasetSnapshot, type SnapshotFile } from './snapshot';
import type { Split } from './scan';

export type { AugmentConfig } from './augment';
export type { DatasetSnapshot } from './snapshot';
export { loadSnapshot } from './snapshot';
export { importDataset } from './import';
export { loadImageForEval, loadImageBufferForEval } from './decode';

/** The engine states what it reads (engine/data.ts); this module provides it, warm() included. */
export type ImageSource = EngineImageSource & {
  warm(onProgress?: (done: number, total: number) => void, signal?: AbortSignal): Promise<void>;
};

export interface OpenImageSourceOptions {
  snapshot: DatasetSnapshot;
  split: Split;
  preprocessing: Preprocessing;
  cacheDir: string;
  augment?: AugmentConfig;
  seed?: number;
  concurrency?: number;
}

class SnapshotImageSource implements ImageSource {
  readonly length: number;
  readonly imageSize: number;
  readonly numClasses: number;
  readonly classNames: string[];
  readonly labels: Int32Array;
  readonly paths: string[];
  private readonly cache: DecodeCache;
  private readonly side: number;

  constructor(
    private readonly files: SnapshotFile[],
    snapshot: DatasetSnapshot,
    private readonly o: OpenImageSourceOptions,
  ) {
    this.length = files.length;
    this.imageSize = o.preprocessing.size;
    this.classNames = snapshot.classes;
    this.numClasses = snapshot.classes.length;
    this.labels = Int32Array.from(files.map((f) => f.label));
    this.paths = files.map((f) => absPath(snapshot, f));
    this.side = cacheSide(o.preprocessing);
    this.cache = new DecodeCache(o.cacheDir, this.side);
  }

  /** The cached S x S square of example i, decoding (and caching) it on a miss. */
  private async square(i: number): Promise<Uint8Array> {
    const f = this.files[i];
    const hit = this.cache.get(f.hash);
    if (hit) return hit;
    let pixels: Uint8Array;
    try {
      pixels = (await decodeSquare(this.paths[i], this.side)).pixels;
    } catch (err) {
      throw new AppError('image_changed', `Cannot decode ${this.paths[i]} (${(err as Error).message}). The folder changed since it was imported: import it again to get a new snapshot.`);
    }
    this.cache.put(f.hash, pixels);
    return pixels;
  }

  async load(indices: number[], opts: { epoch: number; augment: boolean; signal?: AbortSignal }): Promise<Uint8Array> {
    const size = this.imageSize;
    const per = size * size * 3;
    const out = new Uint8Array(indices.length * per);
    const aug = opts.augment ? this.o.augment : undefined;
    await mapPool(
      indices,
      this.o.concurrency ?? DECODE_SETTINGS.pool,
      async (idx, k) => {
        if (idx < 0 || idx >= this.length) throw new AppError('internal', `Image index ${idx} out of range 0..${this.length - 1}.`);
        const sq = await this.square(idx);
        if (aug) out.set(augmentImage(sq, this.side, size, aug, this.o.seed ?? 0, opts.epoch, idx), k * per);
        else centreCropInto(sq, this.side, size, out, k * per);
      },
      opts.signal,
    );
    if (opts.signal?.aborted) throw new CancelledError('data loading');
    return out;
  }

  async warm(onProgress?: (done: number, total: number) => void, signal?: AbortSignal): Promise<void> {
    let done = 0;
    await mapPool(
      this.files.map((_, i) => i),
      this.o.concurrency ?? DECODE_SETTINGS.pool,
      async (i) => {
        if (!this.cache.has(this.files[i].hash)) await this.square(i);
        onProgress?.(++done, this.length);
      },
      signal,
    );
    if (signal?.aborted) throw new CancelledError('decoding');
  }
}

/** One split of a snapshot as an ImageSource (files in snapshot order). */
export async function openImageSource(o: OpenImageSourceOptions): Promise<ImageSource> {
  const files = o.snapshot.files.filter((f) => f.split === o.split);
  return new SnapshotImageSource(files, o.snapshot, o);
}

/** Convenience: open by snapshot id. */
export async function openImageSourceById(datasetsDir: string, id: string, rest: Omit<OpenImageSourceOptions, 'snapshot'>): Promise<ImageSource> {
  return openImageSource({ ...rest, snapshot: loadSnapshot(datasetsDir, id) });
}
