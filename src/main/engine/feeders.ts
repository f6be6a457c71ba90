/**
 * Decides where a run's batches come from: straight from the images, or from the feature
 * cache at the boundary of the earliest group the plan will ever unfreeze (issue 9 item 3).
 * The cached and uncached paths see the same images in the same order; with augmentation
 * the cache holds K augmented views (at most one per epoch) and each epoch samples one per
 * image, every image cycling through its views from its own random offset.
 */
import crypto from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import path from 'node:path';
import type { BackboneNet } from './net/types';
import type { TrainConfig } from './config';
import type { GroupPlan } from './param-groups';
import type { TrainEvent } from './callbacks';
import { cachedFeeder, pixelFeeder, type Feeder, type ImageSource } from './data';
import { buildFeatureStore, evalViews, trainViews, type FeatureStore, type ViewSpec } from './feature-cache';
import { hash32 } from './rng';

export interface CacheReport {
  enabled: boolean;
  /** Group index whose input is cached (0 when disabled). */
  boundary: number;
  /** Name of that group ('output' when the whole backbone is frozen). */
  group: string | null;
  /** Training views per image. */
  views: number;
  where: 'memory' | 'disk' | null;
  bytes: number;
  seconds: number;
}

export interface Feeders {
  train: Feeder;
  val: Feeder;
  cache: CacheReport;
  /**
   * The validation feeder for a model whose groups before `boundary` are frozen: while the
   * boundary stays above `val.from` (the head-only epochs of a progressive plan), the frozen
   * groups' output is computed by the first evaluation and reused by the next ones, until
   * the boundary or `weightsVersion` (bumped whenever weights are set from outside) changes.
   */
  valAt(boundary: number, weightsVersion?: number): Feeder;
  dispose(): void;
}

/**
 * Validation inputs at `boundary`, memoised per batch: the same batches through the same
 * forwardFrozen as the step runner's own evaluation, so its logits are bit-identical.
 */
class FrozenValFeeder implements Feeder {
  private memo = new Map<string, tf.Tensor>();

  constructor(
    private readonly net: BackboneNet,
    private readonly val: Feeder,
    readonly from: number,
  ) {}

  get length(): number {
    return this.val.length;
  }

  async load(indices: number[], epoch: number, flip?: boolean): Promise<tf.Tensor> {
    const key = `${flip ? 'f' : ''}${indices.join(',')}`;
    let t = this.memo.get(key);
    if (!t) {
      const x = await this.val.load(indices, epoch, flip);
      t = tf.tidy(() => this.net.forwardFrozen(x, { from: this.val.from, to: this.from }));
      x.dispose();
      this.memo.set(key, t);
    }
    return t.clone();
  }

  dispose(): void {
    tf.dispose([...this.memo.values()]);
    this.memo.clear();
  }
}

/** valAt() over `val`, memoising only while the frozen output of the whole set fits `memoryBytes`. */
function validationAt(net: BackboneNet, val: Feeder, memoryBytes: number): Pick<Feeders, 'valAt' | 'dispose'> {
  let current: FrozenValFeeder | null = null;
  let version = 0;
  return {
    valAt(boundary, weightsVersion = 0) {
      if (current?.from === boundary && version === weightsVersion) return current;
      current?.dispose();
      current = null;
      version = weightsVersion;
      if (boundary <= val.from || val.length * net.boundaryShape(boundary).reduce((a, b) => a * b, 1) * 4 > memoryBytes) return val;
      return (current = new FrozenValFeeder(net, val, boundary));
    },
    dispose() {
      current?.dispose();
      current = null;
    },
  };
}

export interface PrepareFeedersOptions {
  net: BackboneNet;
  config: TrainConfig;
  plan: GroupPlan;
  train: ImageSource;
  /** Omitted by the LR finder, which needs no validation; `val` then feeds the training images. */
  val?: ImageSource;
  cacheDir?: string;
  /** Must change whenever the images or their augmentation change (include the source's augmentation seed). */
  cacheKey?: string;
  signal?: AbortSignal;
  emit?: (e: TrainEvent) => void;
}

/** Whether the feature cache is used for this plan. */
/**
 * Where the cache cuts the backbone (0 = no cache): at the earliest group the plan will ever
 * unfreeze, or one group earlier when that group's input is much smaller than its output
 * (MobileNetV2's top expands 7x7x112 to 7x7x1280: caching its input is 11x smaller and
 * re-running one 1x1 conv per step costs next to nothing).
 */
export function cacheBoundary(config: TrainConfig, plan: GroupPlan, net: BackboneNet): number {
  const c = plan.earliestTrainable;
  if (c === 0 || config.featureCache.enabled === false) return 0;
  const size = (i: number) => net.boundaryShape(i).reduce((a, b) => a * b, 1);
  return c > 1 && size(c - 1) * 4 <= size(c) ? c - 1 : c;
}

/** Hash of the weights of groups [0, boundary): a cache is only valid for the weights that made it. */
function prefixFingerprint(net: BackboneNet, boundary: number): string {
  const layers = new Set(net.groups.slice(0, boundary).flatMap((g) => g.layers));
  const h = crypto.createHash('sha256');
  const weights = net.getWeights();
  for (const [name, t] of [...weights].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (layers.has(name.slice(0, name.lastIndexOf('/')))) {
      const d = t.dataSync();
      h.update(name);
      h.update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    }
    t.dispose();
  }
  return h.digest('hex');
}

function storeKey(o: PrepareFeedersOptions, split: string, boundary: number, views: ViewSpec[]): string {
  const h = crypto.createHash('sha256');
  h.update(prefixFingerprint(o.net, boundary));
  // Augmented views depend on the run's seed (sources seed their augmentation with it); eval views don't.
  const augmented = views.some((v) => v.augment);
  h.update(JSON.stringify({ net: o.net.id, boundary, split, views, size: o.train.imageSize, seed: augmented ? o.config.seed : null, key: o.cacheKey ?? '' }));
  for (const p of split === 'train' ? o.train.paths : (o.val ?? o.train).paths) h.update(p);
  return h.digest('hex');
}

/** Build the feeders of a run, computing the feature cache first when it applies. */
export async function prepareFeeders(o: PrepareFeedersOptions): Promise<Feeders> {
  const { net, config } = o;
  const scaling = net.preprocessing.scaling;
  const boundary = cacheBoundary(config, o.plan, net);
  const budget = config.featureCache.memoryMB * 1024 * 1024;
  if (boundary === 0) {
    const val = pixelFeeder(o.val ?? o.train, scaling, false, o.signal);
    return {
      train: pixelFeeder(o.train, scaling, config.augment, o.signal),
      val,
      cache: { enabled: false, boundary: 0, group: null, views: 0, where: null, bytes: 0, seconds: 0 },
      ...validationAt(net, val, budget),
    };
  }
  const started = performance.now();
  // Each image walks through its views from its own offset, so no view is computed that the run never samples.
  const tv = trainViews(config.augment, Math.min(config.featureCache.views, config.epochs));
  const vv = evalViews(config.tta);
  const stores: FeatureStore[] = [];
  const build = async (split: 'train' | 'val', source: ImageSource, views: typeof tv, memoryBytes: number) => {
    const key = o.cacheDir ? storeKey(o, split, boundary, views) : '';
    const s = await buildFeatureStore({
      net,
      source,
      boundary,
      views,
      memoryBytes,
      dir: o.cacheDir ? path.join(o.cacheDir, key.slice(0, 24)) : undefined,
      key,
      batchSize: Math.max(32, config.batchSize),
      signal: o.signal,
      onProgress: (done, total) => o.emit?.({ type: 'status', phase: 'caching', message: `Caching ${split} features (${views.length} view${views.length > 1 ? 's' : ''})`, done, total }),
    });
    stores.push(s);
    return s;
  };
  try {
    const trainStore = await build('train', o.train, tv, budget);
    const valStore = o.val ? await build('val', o.val, vv, Math.max(0, budget - trainStore.bytes)) : trainStore;
    const K = tv.length;
    const seed = config.seed;
    const pick = (epoch: number, index: number) => (K === 1 ? 0 : (hash32(hash32(seed ^ 0x51ce) ^ hash32(index + 1)) + epoch) % K);
    const val = cachedFeeder(valStore, valStore.length, () => 0);
    const memo = validationAt(net, val, Math.max(0, budget - trainStore.bytes - (valStore === trainStore ? 0 : valStore.bytes)));
    return {
      train: cachedFeeder(trainStore, o.train.length, pick),
      val,
      valAt: memo.valAt,
      cache: {
        enabled: true,
        boundary,
        group: o.plan.names[boundary] ?? 'output',
        views: K,
        where: trainStore.where === 'disk' || valStore.where === 'disk' ? 'disk' : 'memory',
        bytes: trainStore.bytes + (valStore === trainStore ? 0 : valStore.bytes),
        seconds: (performance.now() - started) / 1000,
      },
      dispose() {
        memo.dispose();
        stores.forEach((s) => s.dispose());
      },
    };
  } catch (err) {
    stores.forEach((s) => s.dispose());
    throw err;
  }
}
