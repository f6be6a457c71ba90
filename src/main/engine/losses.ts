/**
 * Softmax cross-entropy with label smoothing and class weights. With weights, the batch loss
 * is the weighted mean sum(w[y_i] l_i) / sum(w[y_i]) (PyTorch's CrossEntropyLoss reduction),
 * so a batch's scale doesn't depend on which classes it happened to draw.
 */
import * as tf from '@tensorflow/tfjs';
import { AppError } from '../../shared/errors';

export interface LossOptions {
  labelSmoothing: number;
  /** One weight per class, or null for unweighted. */
  classWeights: Float32Array | null;
}

/**
 * Mean loss over the batch as a scalar tensor. `labels` are class indices; the smoothed
 * target puts 1 - eps + eps/K on the true class and eps/K on every other class.
 */
export function softmaxCrossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D, o: LossOptions): tf.Scalar {
  return tf.tidy(() => {
    const k = logits.shape[1];
    const eps = o.labelSmoothing;
    const onehot = tf.oneHot(labels, k).toFloat();
    const target = eps > 0 ? onehot.mul(1 - eps).add(eps / k) : onehot;
    const perSample = tf.neg(tf.sum(target.mul(tf.logSoftmax(logits)), 1));
    if (!o.classWeights) return tf.mean(perSample) as tf.Scalar;
    const w = tf.gather(tf.tensor1d(o.classWeights), labels);
    return tf.div(tf.sum(perSample.mul(w)), tf.sum(w).maximum(1e-12)) as tf.Scalar;
  });
}

/**
 * Class weights for the config value: 'none' -> null; 'balanced' -> n / (K * count_k)
 * (sklearn's heuristic); an explicit list must have one weight per class.
 */
export function resolveClassWeights(spec: 'none' | 'balanced' | number[], labels: Int32Array, numClasses: number, classNames?: string[]): Float32Array | null {
  if (spec === 'none') return null;
  if (Array.isArray(spec)) {
    if (spec.length !== numClasses) {
      const names = classNames ? ` (${classNames.join(', ')})` : '';
      throw new AppError('invalid-config', `loss.classWeights has ${spec.length} weights but the dataset has ${numClasses} classes${names}. Give one weight per class, or use "balanced".`);
    }
    return Float32Array.from(spec);
  }
  const counts = new Float64Array(numClasses);
  for (const y of labels) counts[y] += 1;
  return Float32Array.from(counts, (c) => (c > 0 ? labels.length / (numClasses * c) : 0));
}
