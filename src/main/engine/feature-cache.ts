/**
 * Compute the frozen prefix once (issue 9 item 3). While groups [0, c) stay frozen for the
 * whole plan, an image's activation entering group c never changes between epochs, so it
 * is computed once per view (the eval view, or K augmented views sampled one per epoch)
 * through the folded path, and training runs only groups [c, G) + the head per step.
 *
 * Features live in memory up to a budget, else in flat float32 files (one per view) read
 * by offset; a directory with a matching key is reused by the next run.
 */
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { CancelledError } from '../../shared/errors';
import type { BackboneNet } from './net/types';
import { chunks, loadScaledPixels, type ImageSource } from './data';

export interface ViewSpec {
  /** Passed to ImageSource.load: with augment on, each epoch number is a different augmentation. */
  epoch: number;
  augment: boolean;
  /** Mirror horizontally after loading (flip TTA's second view). */
  flip?: boolean;
}

export interface FeatureStore {
  readonly boundary: number;
  /** Feature shape without batch (the activation entering group `boundary`). */
  readonly shape: number[];
  readonly featureSize: number;
  readonly views: number;
  readonly length: number;
  readonly where: 'memory' | 'disk';
  readonly bytes: number;
  /** Features of `indices`, each from its own view, as one [n, ...shape] block. */
  read(indices: number[], views: number[]): Float32Array;
  dispose(): void;
}

export interface BuildFeatureStoreOptions {
  net: BackboneNet;
  source: ImageSource;
  boundary: number;
  views: ViewSpec[];
  /** Keep in memory when the total fits; otherwise write to `dir` (or a temp dir). */
  memoryBytes: number;
  /** Where disk features go; a complete store with the same key there is reused. */
  dir?: string;
  key?: string;
  batchSize?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

class MemoryStore implements FeatureStore {
  readonly where = 'memory' as const;
  constructor(
    readonly boundary: number,
    readonly shape: number[],
    readonly featureSize: number,
    readonly length: number,
    private data: Float32Array[],
  ) {}
  get views(): number {
    return this.data.length;
  }
  get bytes(): number {
    return this.data.length * this.length * this.featureSize * 4;
  }
  read(indices: number[], views: number[]): Float32Array {
    const F = this.featureSize;
    const out = new Float32Array(indices.length * F);
    indices.forEach((idx, k) => out.set(this.data[views[k]].subarray(idx * F, (idx + 1) * F), k * F));
    return out;
  }
  dispose(): void {
    this.data = [];
  }
}

class DiskStore implements FeatureStore {
  readonly where = 'disk' as const;
  private fds: number[];
  constructor(
    readonly boundary: number,
    readonly shape: number[],
    readonly featureSize: number,
    readonly length: number,
    files: string[],
    private readonly removeDir: string | null,
  ) {
    this.fds = files.map((f) => fs.openSync(f, 'r'));
  }
  get views(): number {
    return this.fds.length;
  }
  get bytes(): number {
    return this.fds.length * this.length * this.featureSize * 4;
  }
  read(indices: number[], views: number[]): Float32Array {
    const F = this.featureSize;
    const out = new Float32Array(indices.length * F);
    const bytes = new Uint8Array(out.buffer);
    indices.forEach((idx, k) => fs.readSync(this.fds[views[k]], bytes, k * F * 4, F * 4, idx * F * 4));
    return out;
  }
  dispose(): void {
    this.fds.forEach((fd) => fs.closeSync(fd));
    this.fds = [];
    if (this.removeDir) fs.rmSync(this.removeDir, { recursive: true, force: true });
  }
}

/**
 * Run images of `view` through the frozen groups [0, boundary) and hand each batch's features
 * to `sink`. The next batch's pixels are requested before this batch's forward pass, so a
 * source that makes them on another thread (augmentation, scaling) works while wasm computes.
 */
async function computeView(o: BuildFeatureStoreOptions, view: ViewSpec, sink: (start: number, data: Float32Array) => void, tick: (n: number) => void): Promise<void> {
  const all = Array.from({ length: o.source.length }, (_, i) => i);
  const batches = chunks(all, o.batchSize ?? 32);
  const size = o.source.imageSize;
  const load = (k: number) => loadScaledPixels(o.source, batches[k], { epoch: view.epoch, augment: view.augment, signal: o.signal }, o.net.preprocessing.scaling);
  let next: Promise<Float32Array> | null = batches.length ? load(0) : null;
  let start = 0;
  try {
    for (let k = 0; k < batches.length; k++) {
      if (o.signal?.aborted) throw new CancelledError('feature caching');
      const batch = batches[k];
      const pixels = await next!;
      next = k + 1 < batches.length ? load(k + 1) : null;
      const out = tf.tidy(() => {
        let x: tf.Tensor = tf.tensor4d(pixels, [batch.length, size, size, 3]);
        if (view.flip) x = tf.reverse(x, 2);
        return o.net.forwardFrozen(x, { from: 0, to: o.boundary });
      });
      const data = (await out.data()) as Float32Array;
      out.dispose();
      sink(start, data);
      start += batch.length;
      tick(batch.length);
    }
  } finally {
    // A batch still in flight when this view fails or is cancelled: let it settle unobserved.
    next?.catch(() => {});
  }
}

interface Manifest {
  key: string;
  shape: number[];
  length: number;
  views: number;
  complete: boolean;
}

/** Compute (or reuse) the features of every image of `source` for every view. */
export async function buildFeatureStore(o: BuildFeatureStoreOptions): Promise<FeatureStore> {
  const shape = o.net.boundaryShape(o.boundary);
  const F = shape.reduce((a, b) => a * b, 1);
  const N = o.source.length;
  const total = N * o.views.length;
  let done = 0;
  const tick = (n: number) => {
    done += n;
    o.onProgress?.(done, total);
  };
  const bytes = total * F * 4;
  if (bytes <= o.memoryBytes && !o.dir) {
    const data = o.views.map(() => new Float32Array(N * F));
    for (let v = 0; v < o.views.length; v++) await computeView(o, o.views[v], (s, d) => data[v].set(d, s * F), tick);
    return new MemoryStore(o.boundary, shape, F, N, data);
  }
  const dir = o.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'finetune-features-'));
  const removeDir = o.dir ? null : dir;
  const key = o.key ?? '';
  const files = o.views.map((_, v) => path.join(dir, `view-${v}.f32`));
  const manifestPath = path.join(dir, 'manifest.json');
  const reusable = (() => {
    try {
      const m = JSON.parse(fs.readFileSync(manifestPath, 'utf8')) as Manifest;
      return m.complete && m.key === key && m.length === N && m.views === o.views.length && m.shape.join() === shape.join() && files.every((f) => fs.statSync(f).size === N * F * 4);
    } catch {
      return false;
    }
  })();
  if (!reusable) {
    fs.mkdirSync(dir, { recursive: true });
    fs.rmSync(manifestPath, { force: true });
    for (let v = 0; v < o.views.length; v++) {
      const tmp = `${files[v]}.tmp`;
      const fd = fs.openSync(tmp, 'w');
      try {
        await computeView(o, o.views[v], (s, d) => fs.writeSync(fd, new Uint8Array(d.buffer, d.byteOffset, d.byteLength), 0, d.byteLength, s * F * 4), tick);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, files[v]);
    }
    const manifest: Manifest = { key, shape, length: N, views: o.views.length, complete: true };
    fs.writeFileSync(manifestPath, JSON.stringify(manifest));
  } else {
    o.onProgress?.(total, total);
  }
  // A small store that was only written to disk to be kept for later runs is read from memory.
  if (bytes <= o.memoryBytes) {
    const data = files.map((f) => {
      const b = fs.readFileSync(f);
      return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    });
    if (removeDir) fs.rmSync(removeDir, { recursive: true, force: true });
    return new MemoryStore(o.boundary, shape, F, N, data);
  }
  return new DiskStore(o.boundary, shape, F, N, files, removeDir);
}

/**
 * The views of the training set: K augmented views when augmenting, else the eval view.
 * Augmented view k is ImageSource epoch k, so the cache holds K distinct augmentations.
 */
export function trainViews(augment: boolean, k: number): ViewSpec[] {
  return augment ? Array.from({ length: k }, (_, v) => ({ epoch: v, augment: true })) : [{ epoch: 0, augment: false }];
}

/** The views of the validation set: the eval view, plus its mirror for flip TTA. */
export function evalViews(tta: 'none' | 'flip'): ViewSpec[] {
  return tta === 'flip' ? [{ epoch: 0, augment: false }, { epoch: 0, augment: false, flip: true }] : [{ epoch: 0, augment: false }];
}
