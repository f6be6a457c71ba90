/**
 * Decides where a run's batches come from: straight from the images, or from the feature
 * cache at the boundary of the earliest group the plan will ever unfreeze (issue 9 item 3).
 * The cached and uncached paths see the same images in the same order; with augmentation
 * the cache holds K augmented views (at most one per epoch) and each epoch samples one per
 * image, every image cycling through its views from its own random offset.
 */
import crypto from 'node:crypto';
import path from 'node:path';
import type { BackboneNet } from './net/types';
import type { TrainConfig } from './config';
import type { GroupPlan } from './param-groups';
import type { TrainEvent } from './callbacks';
import { cachedFeeder, pixelFeeder, type Feeder, type ImageSource } from './data';
import { buildFeatureStore, evalViews, trainViews, type FeatureStore } from './feature-cache';
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
  dispose(): void;
}

export interface PrepareFeedersOptions {
  net: BackboneNet;
  config: TrainConfig;
  plan: GroupPlan;
  train: ImageSource;
  /** Omitted by the LR finder, which needs no validation; `val` then feeds the training images. */
  val?: ImageSource;
  cacheDir?: string;
  cacheKey?: string;
  signal?: AbortSignal;
  emit?: (e: TrainEvent) => void;
}

/** Whether the feature cache is used for this plan. */
export function cacheBoundary(config: TrainConfig, plan: GroupPlan): number {
  const c = plan.earliestTrainable;
  if (c === 0 || config.featureCache.enabled === false) return 0;
  return c;
}

function storeKey(o: PrepareFeedersOptions, split: string, boundary: number, views: unknown): string {
  const h = crypto.createHash('sha256');
  h.update(JSON.stringify({ net: o.net.id, boundary, split, views, size: o.train.imageSize, seed: o.config.seed, key: o.cacheKey ?? '' }));
  for (const p of split === 'train' ? o.train.paths : (o.val ?? o.train).paths) h.update(p);
  return h.digest('hex').slice(0, 24);
}

/** Build the feeders of a run, computing the feature cache first when it applies. */
export async function prepareFeeders(o: PrepareFeedersOptions): Promise<Feeders> {
  const { net, config } = o;
  const scaling = net.preprocessing.scaling;
  const boundary = cacheBoundary(config, o.plan);
  if (boundary === 0) {
    return {
      train: pixelFeeder(o.train, scaling, config.augment, o.signal),
      val: pixelFeeder(o.val ?? o.train, scaling, false, o.signal),
      cache: { enabled: false, boundary: 0, group: null, views: 0, where: null, bytes: 0, seconds: 0 },
      dispose() {},
    };
  }
  const started = performance.now();
  // Each image walks through its views from its own offset, so no view is computed that the run never samples.
  const tv = trainViews(config.augment, Math.min(config.featureCache.views, config.epochs));
  const vv = evalViews(config.tta);
  const budget = config.featureCache.memoryMB * 1024 * 1024;
  const stores: FeatureStore[] = [];
  const build = async (split: 'train' | 'val', source: ImageSource, views: typeof tv, memoryBytes: number) => {
    const key = storeKey(o, split, boundary, views);
    const s = await buildFeatureStore({
      net,
      source,
      boundary,
      views,
      memoryBytes,
      dir: o.cacheDir ? path.join(o.cacheDir, key) : undefined,
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
    return {
      train: cachedFeeder(trainStore, o.train.length, pick),
      val: cachedFeeder(valStore, valStore.length, () => 0),
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
        stores.forEach((s) => s.dispose());
      },
    };
  } catch (err) {
    stores.forEach((s) => s.dispose());
    throw err;
  }
}
