/**
 * Classification heads on top of a backbone: `linear` (global average pool + Dense) and
 * `concat-pool` (fastai's head: avg + max pool concatenated, BN, Dropout, Dense + ReLU, BN,
 * Dropout, Dense). A backbone that already ends in a vector skips the pooling.
 *
 * Parameters carry Keras layer/weight names ('head_dense/kernel', 'head_bn1/gamma', ...) so
 * the export can append the head to the backbone's Keras topology (headKerasLayers). The
 * tf.Variable names get a per-head suffix, because tfjs refuses two live variables with
 * one name (an LR finder or a test may hold two heads).
 */
import * as tf from '@tensorflow/tfjs';
import type { HeadConfig } from './config';
import { globalAvgPool } from './kernels/global-pool';

let headCounter = 0;

interface BnParams {
  gamma: tf.Variable<tf.Rank.R1>;
  beta: tf.Variable<tf.Rank.R1>;
  movingMean: tf.Variable<tf.Rank.R1>;
  movingVariance: tf.Variable<tf.Rank.R1>;
}

interface Param {
  keras: string;
  v: tf.Variable;
  noDecay: boolean;
}

/**
 * Keras' default momentum (0.99) leaves the moving statistics near their initial values
 * after the few dozen steps a small data set gives; 0.9 (PyTorch's 0.1) tracks them.
 */
const BN_MOMENTUM = 0.9;
const BN_EPSILON = 1e-3;

export interface HeadApplyOptions {
  training: boolean;
  /** Seed for this call's dropout masks (drawn from the run's Rng). */
  seed?: number;
  /**
   * Optimisation step (0-based). Early steps average BN statistics cumulatively (weight
   * 1/(step+1), as PyTorch's momentum=None) before switching to the moving average, so a
   * small data set's few dozen steps don't leave them near their initial 0 / 1.
   */
  step?: number;
}

export class Head {
  readonly params: Param[] = [];
  private readonly suffix = `__h${++headCounter}`;
  private readonly pending: { v: tf.Variable; value: tf.Tensor }[] = [];
  private readonly pool: boolean;
  private readonly featureSize: number;

  /**
   * @param inputShape backbone output shape without batch: [h, w, c] or [c]
   * @param seed initialisation seed (glorot uniform kernels, zero biases, like Keras)
   */
  constructor(
    readonly config: HeadConfig,
    readonly inputShape: number[],
    readonly numClasses: number,
    seed: number,
  ) {
    this.pool = inputShape.length === 3;
    const c = inputShape[inputShape.length - 1];
    this.featureSize = config.kind === 'concat-pool' && this.pool ? 2 * c : c;
    if (config.kind === 'concat-pool') {
      this.bn('head_bn1', this.featureSize);
      this.dense('head_hidden', this.featureSize, config.hidden, seed);
      this.bn('head_bn2', config.hidden);
      this.dense('head_dense', config.hidden, numClasses, seed + 1);
    } else {
      this.dense('head_dense', c, numClasses, seed);
    }
  }

  private variable(keras: string, init: tf.Tensor, trainable: boolean, noDecay: boolean): tf.Variable {
    const v = tf.variable(init, trainable, `${keras}${this.suffix}`);
    init.dispose();
    this.params.push({ keras, v, noDecay });
    return v;
  }

  private dense(name: string, fanIn: number, units: number, seed: number): void {
    const kernel = tf.tidy(() => tf.initializers.glorotUniform({ seed }).apply([fanIn, units]) as tf.Tensor);
    this.variable(`${name}/kernel`, kernel, true, false);
    this.variable(`${name}/bias`, tf.zeros([units]), true, true);
  }

  private bn(name: string, n: number): void {
    this.variable(`${name}/gamma`, tf.ones([n]), true, true);
    this.variable(`${name}/beta`, tf.zeros([n]), true, true);
    this.variable(`${name}/moving_mean`, tf.zeros([n]), false, true);
    this.variable(`${name}/moving_variance`, tf.ones([n]), false, true);
  }

  private get(keras: string): tf.Variable {
    const p = this.params.find((q) => q.keras === keras);
    if (!p) throw new Error(`head has no weight ${keras}`);
    return p.v;
  }

  private bnParams(name: string): BnParams {
    return {
      gamma: this.get(`${name}/gamma`) as tf.Variable<tf.Rank.R1>,
      beta: this.get(`${name}/beta`) as tf.Variable<tf.Rank.R1>,
      movingMean: this.get(`${name}/moving_mean`) as tf.Variable<tf.Rank.R1>,
      movingVariance: this.get(`${name}/moving_variance`) as tf.Variable<tf.Rank.R1>,
    };
  }

  /** Trainable variables (kernels, biases, BN gamma/beta). */
  variables(): tf.Variable[] {
    return this.params.filter((p) => p.v.trainable).map((p) => p.v);
  }

  /** Biases and BN parameters, which weight decay skips when asked. */
  isNoDecay(v: tf.Variable): boolean {
    return this.params.some((p) => p.v === v && p.noDecay);
  }

  private applyBn(x: tf.Tensor2D, name: string, training: boolean, step?: number): tf.Tensor2D {
    const p = this.bnParams(name);
    if (!training) return tf.batchNorm2d(x, p.movingMean, p.movingVariance, p.beta, p.gamma, BN_EPSILON);
    const { mean, variance } = tf.moments(x, 0);
    // Moving statistics are updated after the step (commitStatistics), outside the tape.
    const n = x.shape[0];
    const unbiased = n > 1 ? variance.mul(n / (n - 1)) : variance;
    const w = Math.max(1 - BN_MOMENTUM, step === undefined ? 0 : 1 / (step + 1));
    this.pending.push({ v: p.movingMean, value: tf.keep(tf.tidy(() => p.movingMean.mul(1 - w).add(mean.mul(w)))) });
    this.pending.push({ v: p.movingVariance, value: tf.keep(tf.tidy(() => p.movingVariance.mul(1 - w).add(unbiased.mul(w)))) });
    return tf.batchNorm2d(x, mean as tf.Tensor1D, variance as tf.Tensor1D, p.beta, p.gamma, BN_EPSILON);
  }

  private dropout(x: tf.Tensor2D, rate: number, o: HeadApplyOptions, salt: number): tf.Tensor2D {
    return o.training && rate > 0 ? (tf.dropout(x, rate, undefined, (o.seed ?? 0) + salt) as tf.Tensor2D) : x;
  }

  /** Logits [n, classes] from backbone features [n, h, w, c] or [n, c]. */
  apply(features: tf.Tensor, o: HeadApplyOptions): tf.Tensor2D {
    return tf.tidy(() => {
      const f4 = features as tf.Tensor4D;
      let x: tf.Tensor2D;
      if (this.config.kind === 'concat-pool') {
        x = this.pool ? tf.concat([globalAvgPool(f4), tf.max(f4, [1, 2])], 1) as tf.Tensor2D : (features as tf.Tensor2D);
        x = this.applyBn(x, 'head_bn1', o.training, o.step);
        x = this.dropout(x, this.config.dropout, o, 1);
        x = tf.relu(tf.matMul(x, this.get('head_hidden/kernel')).add(this.get('head_hidden/bias')));
        x = this.applyBn(x, 'head_bn2', o.training, o.step);
        x = this.dropout(x, this.config.dropoutFinal, o, 2);
      } else {
        x = this.pool ? globalAvgPool(f4) : (features as tf.Tensor2D);
        x = this.dropout(x, this.config.dropout, o, 1);
      }
      return tf.matMul(x, this.get('head_dense/kernel')).add(this.get('head_dense/bias')) as tf.Tensor2D;
    });
  }

  /** Write the BN moving statistics gathered by training-mode apply calls since the last commit. */
  commitStatistics(): void {
    for (const { v, value } of this.pending.splice(0)) {
      v.assign(value);
      value.dispose();
    }
  }

  /** Drop gathered statistics without writing them (e.g. a skipped step). */
  discardStatistics(): void {
    for (const { value } of this.pending.splice(0)) value.dispose();
  }

  /** Copies of every weight by Keras name (caller owns them). */
  getWeights(): Map<string, tf.Tensor> {
    return new Map(this.params.map((p) => [p.keras, p.v.clone()]));
  }

  /** A copy of one weight by Keras name (caller owns it). */
  getWeightsOf(keras: string): tf.Tensor {
    return this.get(keras).clone();
  }

  /** Set weights by Keras name; names not in the map are left as they are. */
  setWeights(weights: Map<string, tf.Tensor>): void {
    for (const p of this.params) {
      const w = weights.get(p.keras);
      if (w) p.v.assign(w);
    }
  }

  dispose(): void {
    this.discardStatistics();
    for (const p of this.params) p.v.dispose();
    this.params.length = 0;
  }
}

export interface KerasLayerSpec {
  className: string;
  /** Keras layer config (snake_case keys, as in model.json's modelTopology). */
  config: Record<string, unknown>;
  /** Names of the layers feeding this one; '' stands for the backbone's output. */
  inbound: string[];
  /** Weights in Keras order (e.g. kernel, bias; gamma, beta, moving_mean, moving_variance). */
  weights: { name: string; tensor: tf.Tensor }[];
}

/**
 * The head as Keras layers in topological order, with their weights (caller owns the
 * tensors), ending in a softmax Activation, so the export can append it to the backbone.
 */
export function headKerasLayers(head: Head): KerasLayerSpec[] {
  const w = (names: string[]) => names.map((n) => ({ name: n, tensor: head.getWeightsOf(n) }));
  const base = (name: string) => ({ name, trainable: true, dtype: 'float32' });
  const dense = (name: string, units: number, activation: string, inbound: string): KerasLayerSpec => ({
    className: 'Dense',
    config: { ...base(name), units, activation, use_bias: true, kernel_initializer: { class_name: 'GlorotUniform', config: { seed: null } }, bias_initializer: { class_name: 'Zeros', config: {} }, kernel_regularizer: null, bias_regularizer: null, activity_regularizer: null, kernel_constraint: null, bias_constraint: null },
    inbound: [inbound],
    weights: w([`${name}/kernel`, `${name}/bias`]),
  });
  const bn = (name: string, inbound: string): KerasLayerSpec => ({
    className: 'BatchNormalization',
    config: { ...base(name), axis: -1, momentum: BN_MOMENTUM, epsilon: BN_EPSILON, center: true, scale: true, beta_initializer: { class_name: 'Zeros', config: {} }, gamma_initializer: { class_name: 'Ones', config: {} }, moving_mean_initializer: { class_name: 'Zeros', config: {} }, moving_variance_initializer: { class_name: 'Ones', config: {} }, beta_regularizer: null, gamma_regularizer: null, beta_constraint: null, gamma_constraint: null },
    inbound: [inbound],
    weights: w([`${name}/gamma`, `${name}/beta`, `${name}/moving_mean`, `${name}/moving_variance`]),
  });
  const simple = (className: string, name: string, inbound: string[], extra: Record<string, unknown> = {}): KerasLayerSpec => ({ className, config: { ...base(name), ...extra }, inbound, weights: [] });
  const c = head.config;
  const layers: KerasLayerSpec[] = [];
  let last = '';
  const push = (l: KerasLayerSpec) => {
    layers.push(l);
    last = l.config.name as string;
  };
  const pooled = head.inputShape.length === 3;
  if (c.kind === 'concat-pool') {
    if (pooled) {
      layers.push(simple('GlobalAveragePooling2D', 'head_avg_pool', [''], { data_format: 'channels_last' }));
      layers.push(simple('GlobalMaxPooling2D', 'head_max_pool', [''], { data_format: 'channels_last' }));
      push(simple('Concatenate', 'head_concat', ['head_avg_pool', 'head_max_pool'], { axis: -1 }));
    }
    push(bn('head_bn1', last));
    if (c.dropout > 0) push(simple('Dropout', 'head_dropout1', [last], { rate: c.dropout, noise_shape: null, seed: null }));
    push(dense('head_hidden', c.hidden, 'relu', last));
    push(bn('head_bn2', last));
    if (c.dropoutFinal > 0) push(simple('Dropout', 'head_dropout2', [last], { rate: c.dropoutFinal, noise_shape: null, seed: null }));
  } else {
    if (pooled) push(simple('GlobalAveragePooling2D', 'head_pool', [''], { data_format: 'channels_last' }));
    if (c.dropout > 0) push(simple('Dropout', 'head_dropout', [last], { rate: c.dropout, noise_shape: null, seed: null }));
  }
  push(dense('head_dense', head.numClasses, 'linear', last));
  push(simple('Activation', 'head_softmax', [last], { activation: 'softmax' }));
  return layers;
}
