/**
 * LR range test (Smith 2015; fastai lr_find): train for up to a few hundred batches while
 * the learning rate grows exponentially from minLr to maxLr, record the smoothed loss, stop
 * when it diverges, then put every weight back. Suggestions: the steepest descent of the
 * smoothed loss, fastai's "valley", and the lr at the minimum / 10. After an unfreeze it can
 * run on just the groups that unfroze (pass `groups` and the trained `head`).
 */
import * as tf from '@tensorflow/tfjs';
import { AppError, CancelledError } from '../../shared/errors';
import type { BackboneNet } from './net/types';
import { parseConfig, type TrainConfig, type TrainConfigInput } from './config';
import { Head } from './heads';
import { GroupedOptimizer } from './optimizers';
import { resolveClassWeights } from './losses';
import { planGroups } from './param-groups';
import { StepRunner } from './step-runner';
import { chunks, type ImageSource } from './data';
import { derivedRng, hash32 } from './rng';
import { chooseMicroBatch } from './memory';
import { prepareFeeders } from './feeders';
import { dataToTensors, tensorsToData } from './checkpoint';

export interface LrFindOptions {
  net: BackboneNet;
  train: ImageSource;
  config?: TrainConfig | TrainConfigInput;
  /** Backbone groups (by name) to train during the test; default: the config's initially trainable groups. */
  groups?: string[];
  /** A trained head to continue from (e.g. after the head-only phase); default: a fresh one. */
  head?: Head;
  minLr?: number;
  maxLr?: number;
  /** Number of batches (lrs) to try; default 100. */
  steps?: number;
  /** Exponential smoothing of the loss (fastai: 0.98). */
  beta?: number;
  /** Stop when the smoothed loss exceeds this multiple of its minimum. */
  divergeFactor?: number;
  signal?: AbortSignal;
  onProgress?: (p: { step: number; steps: number; lr: number; loss: number }) => void;
}

export interface LrFindResult {
  /** Head lr at each step (backbone groups get the same curve scaled by their lr ratio). */
  lrs: number[];
  losses: number[];
  smoothed: number[];
  suggestions: { steepest: number; valley: number; minimum: number };
  diverged: boolean;
  groups: string[];
}

/** fastai's valley: the point ~2/3 down the longest decreasing stretch of the loss curve. */
export function valleyIndex(losses: number[]): number {
  const n = losses.length;
  const lds = new Array(n).fill(1);
  let maxStart = 0;
  let maxEnd = 0;
  for (let i = 1; i < n; i++) {
    for (let j = 0; j < i; j++) if (losses[i] < losses[j] && lds[i] < lds[j] + 1) lds[i] = lds[j] + 1;
    if (lds[maxEnd] < lds[i]) {
      maxEnd = i;
      maxStart = maxEnd - lds[maxEnd];
    }
  }
  const sections = (maxEnd - maxStart) / 3;
  return Math.min(n - 1, Math.max(0, maxStart + Math.floor(sections) + Math.floor(sections / 2)));
}

/** Index of the steepest descent of `losses` against log(lr) (central differences). */
export function steepestIndex(lrs: number[], losses: number[]): number {
  let best = 0;
  let bestSlope = Infinity;
  for (let i = 1; i < losses.length - 1; i++) {
    const slope = (losses[i + 1] - losses[i - 1]) / (Math.log(lrs[i + 1]) - Math.log(lrs[i - 1]));
    if (slope < bestSlope) {
      bestSlope = slope;
      best = i;
    }
  }
  return best;
}

/**
 * Run the range test and restore the weights of `net` (and `head`, if given) afterwards.
 * The net is left with the tested groups trainable; call setTrainable before reusing it.
 */
export async function lrFind(o: LrFindOptions): Promise<LrFindResult> {
  const base = parseConfig(o.config ?? {});
  const names = o.net.groups.map((g) => g.name);
  const config: TrainConfig = o.groups ? parseConfig({ ...base, trainable: { mode: 'named', groups: o.groups, last: 0 }, unfreeze: { stages: [], resetOptimizer: false } }) : parseConfig({ ...base, unfreeze: { stages: [], resetOptimizer: false } });
  const plan = planGroups(config, names);
  const minLr = o.minLr ?? 1e-7;
  const maxLr = o.maxLr ?? 10;
  const steps = o.steps ?? 100;
  const beta = o.beta ?? 0.98;
  const divergeFactor = o.divergeFactor ?? 4;
  if (!(minLr > 0 && maxLr > minLr && steps >= 5)) throw new AppError('invalid-argument', `LR finder needs 0 < minLr < maxLr and at least 5 steps; got minLr ${minLr}, maxLr ${maxLr}, steps ${steps}.`);

  const ownHead = !o.head;
  const head = o.head ?? new Head(config.head, o.net.outputShape, o.train.numClasses, hash32(config.seed ^ 0x4ead));
  const netBefore = tensorsToData(o.net.getWeights());
  const headBefore = tensorsToData(head.getWeights());
  const optimizer = new GroupedOptimizer(config.optimizer);
  const runner = new StepRunner(o.net, head, optimizer, plan, {
    trainBatchNormStats: config.trainBatchNormStats,
    weightDecay: config.optimizer.weightDecay,
    loss: { labelSmoothing: config.loss.labelSmoothing, classWeights: resolveClassWeights(config.loss.classWeights, o.train.labels, o.train.numClasses) },
  });
  runner.setTrainable(plan.initial);
  const ratios = runner.peakLrs().map((lr) => lr / plan.headLr);
  const micro = chooseMicroBatch(o.net, plan.earliestTrainable, config.batchSize, config.microBatch);
  const feeders = await prepareFeeders({ net: o.net, config, plan, train: o.train, signal: o.signal });
  const lrs: number[] = [];
  const losses: number[] = [];
  const smoothed: number[] = [];
  let avg = 0;
  let minSmoothed = Infinity;
  let diverged = false;
  try {
    let epoch = 0;
    let queue: number[][] = [];
    for (let i = 0; i < steps; i++) {
      if (o.signal?.aborted) throw new CancelledError('learning-rate finder');
      if (!queue.length) {
        const order = derivedRng(config.seed, 'lr-find', epoch).shuffle(Array.from({ length: o.train.length }, (_, k) => k));
        queue = chunks(order, config.batchSize);
        epoch++;
      }
      const idx = queue.shift()!;
      const lr = minLr * (maxLr / minLr) ** (i / (steps - 1));
      const x = await feeders.train.load(idx, epoch - 1);
      let loss: number;
      try {
        const labels = Int32Array.from(idx, (k) => o.train.labels[k]);
        loss = runner.trainStep(x, feeders.train.from, labels, ratios.map((r) => r * lr), hash32(config.seed ^ (i + 1)), micro, o.head ? undefined : i).loss;
      } finally {
        x.dispose();
      }
      avg = beta * avg + (1 - beta) * loss;
      const s = avg / (1 - beta ** (i + 1));
      lrs.push(lr);
      losses.push(loss);
      smoothed.push(s);
      o.onProgress?.({ step: i + 1, steps, lr, loss: s });
      if (!Number.isFinite(s) || (i > 2 && s > divergeFactor * minSmoothed)) {
        diverged = true;
        break;
      }
      minSmoothed = Math.min(minSmoothed, s);
      await new Promise((r) => setImmediate(r));
    }
  } finally {
    feeders.dispose();
    optimizer.dispose();
    const nt = dataToTensors(netBefore);
    o.net.setWeights(nt);
    tf.dispose([...nt.values()]);
    const ht = dataToTensors(headBefore);
    head.setWeights(ht);
    tf.dispose([...ht.values()]);
    if (ownHead) head.dispose();
  }
  // fastai drops the first few and last few points, where the smoothing and divergence distort the curve.
  const lo = Math.min(smoothed.length - 1, Math.max(0, Math.floor(smoothed.length * 0.05)));
  const hi = Math.max(lo + 1, smoothed.length - (diverged ? 1 : 0));
  const curve = smoothed.slice(lo, hi);
  const curveLrs = lrs.slice(lo, hi);
  let minIdx = 0;
  curve.forEach((v, k) => {
    if (v < curve[minIdx]) minIdx = k;
  });
  return {
    lrs,
    losses,
    smoothed,
    suggestions: {
      steepest: curveLrs[steepestIndex(curveLrs, curve)] ?? lrs[0],
      valley: curveLrs[valleyIndex(curve)] ?? lrs[0],
      minimum: (curveLrs[minIdx] ?? lrs[0]) / 10,
    },
    diverged,
    groups: [...plan.initial].map((g) => names[g]),
  };
}
