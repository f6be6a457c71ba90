/**
 * What the engine needs from the data pipeline, and where uint8 pixels become floats
 * (through shared/preprocessing's table, which the pixel thread uses too). The scaling
 * comes from the backbone's preprocessing, never from the user, so a model can't be
 * trained with one scaling and served with another.
 */
import * as tf from '@tensorflow/tfjs';
import { scaleThroughTable, scalingTable, type Scaling } from '../../shared/preprocessing';

/** Structural copy of the datasets slice's ImageSource (src/main/dataset/image-source.ts). */
export interface ImageSource {
  readonly length: number;
  readonly imageSize: number;
  readonly numClasses: number;
  readonly classNames: string[];
  readonly labels: Int32Array;
  readonly paths: string[];
  /** n x size x size x 3 uint8, NHWC. Augmentation is a function of (source seed, epoch, index). */
  load(indices: number[], opts: { epoch: number; augment: boolean; signal?: AbortSignal }): Promise<Uint8Array>;
  /**
   * The same views as floats, `table` mapping channel c's value v (at c * 256 + v): lets a
   * source scale them where it makes them (another thread). Must equal scalePixels(load()).
   */
  loadScaled?(indices: number[], opts: { epoch: number; augment: boolean; signal?: AbortSignal }, table: Float32Array): Promise<Float32Array>;
  warm?(onProgress?: (done: number, total: number) => void, signal?: AbortSignal): Promise<void>;
}

const tables = new WeakMap<Scaling, Float32Array>();

function tableFor(scaling: Scaling): Float32Array {
  let t = tables.get(scaling);
  if (!t) tables.set(scaling, (t = scalingTable(scaling)));
  return t;
}

/** uint8 NHWC pixels -> float32 scaled as the backbone expects. */
export function scalePixels(pixels: Uint8Array, scaling: Scaling): Float32Array {
  return scaleThroughTable(pixels, tableFor(scaling));
}

/** uint8 NHWC pixels -> float32 tensor scaled as the backbone expects. */
export function pixelsToTensor(pixels: Uint8Array, n: number, size: number, scaling: Scaling): tf.Tensor4D {
  return tf.tensor4d(scalePixels(pixels, scaling), [n, size, size, 3]);
}

/** Scaled float pixels of `indices`, made by the source when it can (off this thread), else here. */
export async function loadScaledPixels(source: ImageSource, indices: number[], opts: { epoch: number; augment: boolean; signal?: AbortSignal }, scaling: Scaling): Promise<Float32Array> {
  if (source.loadScaled) return source.loadScaled(indices, opts, tableFor(scaling));
  return scalePixels(await source.load(indices, opts), scaling);
}

/** Split `items` into consecutive chunks of at most `size`. */
export function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Produces network inputs at group `from` (0: scaled pixels; c: cached features entering group c). */
export interface Feeder {
  readonly from: number;
  readonly length: number;
  /** Inputs for `indices` in epoch `epoch` (0-based); `flip` mirrors them (flip TTA). Caller disposes. */
  load(indices: number[], epoch: number, flip?: boolean): Promise<tf.Tensor>;
}

/** Decoded (and, when training with augment, augmented) images straight from an ImageSource. */
export function pixelFeeder(source: ImageSource, scaling: Scaling, augment: boolean, signal?: AbortSignal): Feeder {
  return {
    from: 0,
    length: source.length,
    async load(indices, epoch, flip) {
      const size = source.imageSize;
      const x = tf.tensor4d(await loadScaledPixels(source, indices, { epoch, augment, signal }, scaling), [indices.length, size, size, 3]);
      if (!flip) return x;
      const f = tf.reverse(x, 2);
      x.dispose();
      return f;
    },
  };
}

/** Minimal view of a feature store for feeding (see feature-cache.ts). */
export interface FeatureReader {
  readonly boundary: number;
  readonly shape: number[];
  readonly views: number;
  read(indices: number[], views: number[]): Float32Array;
}

/**
 * Cached features. `pickView(epoch, index)` chooses the view of each image (one augmented
 * view per epoch); with flip, view 1 is expected to hold the mirrored eval view.
 */
export function cachedFeeder(store: FeatureReader, length: number, pickView: (epoch: number, index: number) => number): Feeder {
  return {
    from: store.boundary,
    length,
    async load(indices, epoch, flip) {
      const views = indices.map((i) => (flip ? 1 : pickView(epoch, i)));
      return tf.tensor(store.read(indices, views), [indices.length, ...store.shape], 'float32');
    },
  };
}
