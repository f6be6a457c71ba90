/**
 * The pixels of one split as the engine reads them: each image's S x S square from the
 * decode cache (decoded on a miss), then its eval view (centre crop) or the augmented view
 * of (seed, epoch, index), optionally mapped to floats through a per-channel table. Free of
 * tfjs, and of sharp until a miss, so the pixel thread (services/jobs/pixel-thread.ts) runs
 * the very same code as the engine's own thread: a batch is identical wherever it is made.
 */
import { AppError, CancelledError } from '../../shared/errors';
import { scaleThroughTable } from '../../shared/preprocessing';
import { DecodeCache, mapPool } from './cache';
import { centreCropInto } from './crop';
import { augmentImageInto, type AugmentConfig } from './augment';

/** Everything needed to read a split's pixels; plain data, so it can cross to another thread. */
export interface SplitPixelsSpec {
  /** Content hash (the decode cache key) and absolute path of each image, in split order. */
  files: { hash: string; path: string }[];
  /** Side of the cached square and of the view. */
  side: number;
  size: number;
  cacheDir: string;
  augment?: AugmentConfig;
  seed: number;
  /** Images decoded at once on a cache miss. */
  concurrency: number;
}

export interface PixelRequest {
  epoch: number;
  augment: boolean;
  signal?: AbortSignal;
}

export class SplitPixels {
  private readonly cache: DecodeCache;

  constructor(readonly spec: SplitPixelsSpec) {
    this.cache = new DecodeCache(spec.cacheDir, spec.side);
  }

  get length(): number {
    return this.spec.files.length;
  }

  /** The cached S x S square of image i, decoding (and caching) it on a miss. */
  async square(i: number): Promise<Uint8Array> {
    const f = this.spec.files[i];
    const hit = this.cache.get(f.hash);
    if (hit) return hit;
    let pixels: Uint8Array;
    try {
      // sharp loads only when a square is missing (never in a run right after its import).
      const { decodeSquare } = await import('./decode');
      pixels = (await decodeSquare(f.path, this.spec.side)).pixels;
    } catch (err) {
      throw new AppError('image_changed', `Cannot decode ${f.path} (${(err as Error).message}). The folder changed since it was imported: import it again to get a new snapshot.`);
    }
    this.cache.put(f.hash, pixels);
    return pixels;
  }

  /** Make sure image i is in the decode cache (without reading it back when it is). */
  async ensureCached(i: number): Promise<void> {
    if (!this.cache.has(this.spec.files[i].hash)) await this.square(i);
  }

  /** n x size x size x 3 uint8 (NHWC): eval views, or the augmented views of `epoch`. */
  async load(indices: number[], opts: PixelRequest): Promise<Uint8Array> {
    const { side, size } = this.spec;
    const per = size * size * 3;
    const out = new Uint8Array(indices.length * per);
    const aug = opts.augment ? this.spec.augment : undefined;
    await mapPool(
      indices,
      this.spec.concurrency,
      async (idx, k) => {
        if (!(idx >= 0 && idx < this.length)) throw new AppError('internal', `Image index ${idx} out of range 0..${this.length - 1}.`);
        const sq = await this.square(idx);
        if (aug) augmentImageInto(sq, side, size, aug, this.spec.seed, opts.epoch, idx, out.subarray(k * per, (k + 1) * per));
        else centreCropInto(sq, side, size, out, k * per);
      },
      opts.signal,
    );
    if (opts.signal?.aborted) throw new CancelledError('data loading');
    return out;
  }

  /** The same views as `load`, as floats through the engine's scaling table. */
  async loadScaled(indices: number[], opts: PixelRequest, table: Float32Array): Promise<Float32Array> {
    return scaleThroughTable(await this.load(indices, opts), table);
  }
}
