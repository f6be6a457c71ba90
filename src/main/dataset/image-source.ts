/**
 * What the engine reads: one split of a snapshot as fixed-size uint8 RGB images, decoded
 * once into the decode cache, augmented on the fly from (seed, epoch, index). Memory holds
 * a batch, never the data set: 50,000 images stream from the cache files.
 */
import type { Preprocessing } from '../../shared/preprocessing';
import type { ImageSource as EngineImageSource } from '../engine/data';
import { CancelledError } from '../../shared/errors';
import { mapPool } from './cache';
import { DECODE_SETTINGS, cacheSide } from './decode';
import type { AugmentConfig } from './augment';
import { absPath, loadSnapshot, type DatasetSnapshot, type SnapshotFile } from './snapshot';
import { SplitPixels, type PixelRequest, type SplitPixelsSpec } from './split-pixels';
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

/** A split's pixels made on another thread (services/jobs/pixel-thread.ts), with the same code. */
export interface RemotePixels {
  load(indices: number[], opts: PixelRequest): Promise<Uint8Array>;
  loadScaled(indices: number[], opts: PixelRequest, table: Float32Array): Promise<Float32Array>;
}

/** Something that reads splits on another thread, so loading overlaps the engine's compute. */
export interface PixelThread {
  open(spec: SplitPixelsSpec): RemotePixels;
}

export interface OpenImageSourceOptions {
  snapshot: DatasetSnapshot;
  split: Split;
  preprocessing: Preprocessing;
  cacheDir: string;
  augment?: AugmentConfig;
  seed?: number;
  concurrency?: number;
  /** Load batches on this thread instead of the caller's (warm() always runs here). */
  thread?: PixelThread;
}

class SnapshotImageSource implements ImageSource {
  readonly length: number;
  readonly imageSize: number;
  readonly numClasses: number;
  readonly classNames: string[];
  readonly labels: Int32Array;
  readonly paths: string[];
  private readonly local: SplitPixels;
  private readonly remote: RemotePixels | null;

  constructor(
    files: SnapshotFile[],
    snapshot: DatasetSnapshot,
    o: OpenImageSourceOptions,
  ) {
    this.length = files.length;
    this.imageSize = o.preprocessing.size;
    this.classNames = snapshot.classes;
    this.numClasses = snapshot.classes.length;
    this.labels = Int32Array.from(files.map((f) => f.label));
    this.paths = files.map((f) => absPath(snapshot, f));
    const spec: SplitPixelsSpec = {
      files: files.map((f, i) => ({ hash: f.hash, path: this.paths[i] })),
      side: cacheSide(o.preprocessing),
      size: o.preprocessing.size,
      cacheDir: o.cacheDir,
      augment: o.augment,
      seed: o.seed ?? 0,
      concurrency: o.concurrency ?? DECODE_SETTINGS.pool,
    };
    this.local = new SplitPixels(spec);
    this.remote = o.thread?.open(spec) ?? null;
  }

  load(indices: number[], opts: PixelRequest): Promise<Uint8Array> {
    if (!this.remote) return this.local.load(indices, opts);
    return this.viaThread(opts, (remote, o) => remote.load(indices, o));
  }

  loadScaled(indices: number[], opts: PixelRequest, table: Float32Array): Promise<Float32Array> {
    if (!this.remote) return this.local.loadScaled(indices, opts, table);
    return this.viaThread(opts, (remote, o) => remote.loadScaled(indices, o, table));
  }

  /** A request to the pixel thread (a signal can't cross threads: checked before and after). */
  private async viaThread<T>(opts: PixelRequest, call: (remote: RemotePixels, o: PixelRequest) => Promise<T>): Promise<T> {
    if (opts.signal?.aborted) throw new CancelledError('data loading');
    const out = await call(this.remote!, { epoch: opts.epoch, augment: opts.augment });
    if (opts.signal?.aborted) throw new CancelledError('data loading');
    return out;
  }

  async warm(onProgress?: (done: number, total: number) => void, signal?: AbortSignal): Promise<void> {
    let done = 0;
    await mapPool(
      this.paths.map((_, i) => i),
      this.local.spec.concurrency,
      async (i) => {
        await this.local.ensureCached(i);
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
