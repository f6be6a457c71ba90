/**
 * One optimisation step and one evaluation pass over backbone + head, shared by the trainer
 * and the LR finder. The frozen groups before the first trainable one run through the
 * folded path outside the gradient tape (so their activations are never recorded and their
 * BatchNorm stays in inference mode); only the trainable suffix and the head run inside the
 * closure. Every tensor is created inside tf.tidy; only numbers come out.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackboneNet } from './net/types';
import type { Head } from './heads';
import type { GroupedOptimizer, OptimizerGroup } from './optimizers';
import { softmaxCrossEntropy, type LossOptions } from './losses';
import { HEAD_GROUP, groupLr, type GroupPlan } from './param-groups';
import { chunks, type Feeder } from './data';

export interface StepResult {
  /** Mean training loss of the batch. */
  loss: number;
  correct: number;
  size: number;
}

export interface EvalResult {
  loss: number;
  accuracy: number;
  /** Predicted class per image, in feeder order. */
  predictions: Int32Array;
}

export interface StepRunnerOptions {
  trainBatchNormStats: boolean;
  weightDecay: number;
  loss: LossOptions;
}

export class StepRunner {
  private trainableSet = new Set<number>();

  constructor(
    readonly net: BackboneNet,
    readonly head: Head,
    readonly optimizer: GroupedOptimizer,
    readonly plan: GroupPlan,
    private readonly opts: StepRunnerOptions,
  ) {}

  /** First trainable backbone group (groups.length when only the head trains). */
  get boundary(): number {
    return this.trainableSet.size ? Math.min(...this.trainableSet) : this.net.groups.length;
  }

  get trainable(): ReadonlySet<number> {
    return this.trainableSet;
  }

  /** Make exactly these backbone groups trainable and give the optimiser one group each (+ the head). */
  setTrainable(groups: Iterable<number>): void {
    this.trainableSet = new Set(groups);
    this.net.setTrainable(this.trainableSet, { trainBatchNormStats: this.opts.trainBatchNormStats });
    const list: OptimizerGroup[] = [...this.trainableSet]
      .sort((a, b) => a - b)
      .map((i) => ({ name: this.net.groups[i].name, variables: this.net.groupVariables(i), weightDecay: this.opts.weightDecay, noDecay: (v: tf.Variable) => this.net.isNoDecay(v) }))
      .filter((g) => g.variables.length > 0);
    list.push({ name: HEAD_GROUP, variables: this.head.variables(), weightDecay: this.opts.weightDecay, noDecay: (v) => this.head.isNoDecay(v) });
    this.optimizer.setGroups(list);
  }

  /** Peak lr of each optimiser group, in optimiser order. */
  peakLrs(): number[] {
    return this.optimizer.groupNames.map((n) => (n === HEAD_GROUP ? this.plan.headLr : groupLr(this.plan, this.plan.names.indexOf(n))));
  }

  /**
   * Forward + backward + update on one batch. `x` enters group `from`; the batch is split
   * into micro-batches of `micro` images whose gradients are summed (each loss weighted by
   * its share of the batch) before one update. `step` is the global step (head BN warm start).
   */
  trainStep(x: tf.Tensor, from: number, labels: Int32Array, lrs: number[], seed: number, micro: number, step?: number): StepResult {
    const N = labels.length;
    const b = this.boundary;
    const G = this.net.groups.length;
    const vars = this.optimizer.variables();
    let acc: Record<string, tf.Tensor> | null = null;
    let loss = 0;
    let correct = 0;
    try {
      for (let s = 0; s < N; s += micro) {
        const n = Math.min(micro, N - s);
        const r = tf.tidy(() => {
          const xs = n === N ? x : x.slice([s, ...x.shape.slice(1).map(() => 0)], [n, ...x.shape.slice(1)]);
          const ys = tf.tensor1d(labels.subarray(s, s + n), 'int32');
          const frozen = from < b ? this.net.forwardFrozen(xs, { from, to: b }) : xs;
          let hits: tf.Tensor | null = null;
          const { value, grads } = tf.variableGrads(() => {
            const feats = b < G ? this.net.forwardTrainable(frozen, { from: b, training: true }) : frozen;
            const logits = this.head.apply(feats, { training: true, seed: seed + s, step });
            hits = tf.keep(tf.sum(tf.equal(tf.argMax(logits, 1), ys).toInt()));
            return softmaxCrossEntropy(logits, ys, this.opts.loss).mul(n / N) as tf.Scalar;
          }, vars);
          return { value, grads, hits: hits! as tf.Tensor };
        });
        loss += r.value.dataSync()[0];
        correct += r.hits.dataSync()[0];
        r.value.dispose();
        r.hits.dispose();
        this.head.commitStatistics();
        if (!acc) acc = r.grads;
        else {
          const prev: Record<string, tf.Tensor> = acc;
          acc = tf.tidy(() => Object.fromEntries(Object.entries(r.grads).map(([k, g]) => [k, prev[k] ? prev[k].add(g) : g.clone()])));
          tf.dispose(Object.values(prev));
          tf.dispose(Object.values(r.grads));
        }
      }
      this.optimizer.applyGradients(acc!, lrs);
    } finally {
      if (acc) tf.dispose(Object.values(acc));
      this.head.discardStatistics();
    }
    return { loss, correct, size: N };
  }

  /** Logits in inference mode for inputs entering group `from` (caller disposes). */
  logits(x: tf.Tensor, from: number): tf.Tensor2D {
    const b = Math.max(this.boundary, from);
    const G = this.net.groups.length;
    return tf.tidy(() => {
      const frozen = from < b ? this.net.forwardFrozen(x, { from, to: b }) : x;
      const feats = b < G ? this.net.forwardTrainable(frozen, { from: b, training: false }) : frozen;
      return this.head.apply(feats, { training: false });
    });
  }

  /**
   * Loss (plain cross-entropy, no smoothing or weights, so runs stay comparable) and
   * accuracy over a whole feeder; flip TTA averages the softmax of each image and its mirror.
   */
  async evaluate(feeder: Feeder, labels: Int32Array, batchSize: number, tta: 'none' | 'flip'): Promise<EvalResult> {
    const all = Array.from({ length: feeder.length }, (_, i) => i);
    let lossSum = 0;
    let correct = 0;
    const predictions = new Int32Array(feeder.length);
    for (const idx of chunks(all, batchSize)) {
      const views = tta === 'flip' ? [false, true] : [false];
      const probs: tf.Tensor2D[] = [];
      for (const flip of views) {
        const x = await feeder.load(idx, 0, flip);
        const l = this.logits(x, feeder.from);
        probs.push(tf.tidy(() => tf.softmax(l)));
        l.dispose();
        x.dispose();
      }
      const [nll, pred] = tf.tidy(() => {
        const p = probs.length === 1 ? probs[0] : tf.addN(probs).div(probs.length);
        const ys = tf.tensor1d(Int32Array.from(idx, (i) => labels[i]), 'int32');
        const picked = tf.sum(p.mul(tf.oneHot(ys, probs[0].shape[1])), 1);
        return [tf.sum(tf.neg(tf.log(picked.maximum(1e-12)))), tf.argMax(p, 1)];
      });
      tf.dispose(probs);
      lossSum += nll.dataSync()[0];
      const pd = pred.dataSync();
      idx.forEach((i, k) => {
        predictions[i] = pd[k];
        if (pd[k] === labels[i]) correct++;
      });
      nll.dispose();
      pred.dispose();
    }
    const n = Math.max(1, feeder.length);
    return { loss: lossSum / n, accuracy: correct / n, predictions };
  }
}
