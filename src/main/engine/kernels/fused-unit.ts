/**
 * A trainable conv + (folded) BatchNorm + ReLU/ReLU6 unit as one op with a hand-written
 * gradient. Placeholder until the custom gradient lands: runs the unfused composition.
 */
import * as tf from '@tensorflow/tfjs';
import type { ConvPart } from '../net/compile';

/** y = act(conv(x, filter) + bias), differentiable in x, filter and bias. */
export function convBnAct(x: tf.Tensor4D, filter: tf.Tensor4D, bias: tf.Tensor1D | undefined, c: ConvPart, activation: 'linear' | 'relu' | 'relu6'): tf.Tensor4D {
  const args = { x, filter, strides: c.strides, pad: c.pad as 'same', dilations: c.dilations, bias, activation: 'linear' as const };
  const z = c.depthwise ? tf.fused.depthwiseConv2d(args) : tf.fused.conv2d(args);
  return activation === 'relu6' ? tf.relu6(z) : activation === 'relu' ? tf.relu(z) : z;
}
