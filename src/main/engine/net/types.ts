/**
 * The seam between the backbone executor (net/) and the training logic (trainer, heads,
 * optimisers, caches). A backbone is a Keras-format LayersModel run by our own executor,
 * not by tf.layers: frozen groups run folded (BatchNorm folded into convs, ReLU6 fused)
 * outside any gradient tape, trainable groups run with tf.Variables under the tape.
 */
import type * as tf from '@tensorflow/tfjs';
import type { Preprocessing } from '../../../shared/preprocessing';

/** An ordered slice of the backbone, from input to output: stem, block_1, ..., top. */
export interface LayerGroup {
  name: string;
  /** Keras layer names in this group. */
  layers: string[];
  /** Number of trainable parameters (kernels, biases, BN gamma/beta). */
  paramCount: number;
}

export interface BackboneForwardOptions {
  /** First group to run (input is the activation entering it; 0 = the scaled image). */
  from?: number;
  /** Group index to stop before (default: all groups). */
  to?: number;
}

export interface BackboneNet {
  readonly id: string;
  readonly groups: LayerGroup[];
  /** Output shape without the batch dimension: [h, w, c] for a feature map, [c] for a vector. */
  readonly outputShape: number[];
  readonly preprocessing: Preprocessing;

  /** Shape (without batch) of the activation entering group `i` (i = groups.length: the output). */
  boundaryShape(i: number): number[];

  /**
   * Make exactly these groups trainable. Frozen groups are (re)folded from the current
   * weights; trainable groups get tf.Variables. BatchNorm stays in inference mode unless
   * `trainBatchNormStats` is set.
   */
  setTrainable(groups: ReadonlySet<number>, options?: { trainBatchNormStats?: boolean }): void;

  /** The tf.Variables of a trainable group (empty for frozen groups or groups without weights). */
  groupVariables(i: number): tf.Variable[];
  /** True for variables that are biases or BatchNorm gamma/beta (excluded from weight decay if asked). */
  isNoDecay(v: tf.Variable): boolean;

  /** Inference forward through frozen groups [from, to). Never records gradients. Caller disposes the result. */
  forwardFrozen(x: tf.Tensor, options?: BackboneForwardOptions): tf.Tensor;
  /** Differentiable forward through groups [from, to); call inside the gradient closure. */
  forwardTrainable(x: tf.Tensor, options?: BackboneForwardOptions & { training?: boolean }): tf.Tensor;

  /** Current weights by Keras weight name (e.g. "block_16_project/kernel"), unfolded. Caller owns them. */
  getWeights(): Map<string, tf.Tensor>;
  setWeights(weights: Map<string, tf.Tensor>): void;
  /** The Keras model topology JSON (model.json's modelTopology) for export. */
  modelTopology(): unknown;
  dispose(): void;
}
