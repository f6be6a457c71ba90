/**
 * A trainable conv + BatchNorm (inference mode, already folded into filter and bias by
 * the caller, inside the tape) + ReLU/ReLU6 unit as one op with a hand-written gradient:
 * forward is one fused kernel; backward is one pass for the activation mask and the bias
 * sums, then the conv's input and filter gradients. The fold's own gradient (into kernel,
 * gamma, beta) is kernel-sized and left to autodiff. About 4 kernels per unit instead of
 * the 15-20 tfjs runs for conv + BatchNorm + ReLU6.
 */
import * as tf from '@tensorflow/tfjs';
import type { ConvPart } from '../net/compile';
import { ACT_GRAD_KERNEL, runActGradBias, type FusableAct } from './act-grad';

/** True when `x` carries gradient: a variable or an output of an op on the active tape. */
export function isOnTape(x: tf.Tensor): boolean {
  if (x instanceof tf.Variable) return x.trainable;
  const tape = (tf.engine() as unknown as { state: { activeTape?: { outputs: tf.Tensor[] }[] } }).state.activeTape;
  if (!tape) return false;
  for (let i = tape.length - 1; i >= 0; i--) for (const o of tape[i].outputs) if (o && o.id === x.id) return true;
  return false;
}

function attrsOf(c: ConvPart) {
  return { strides: c.strides, pad: c.pad, dilations: c.dilations, dataFormat: 'NHWC' as const, dimRoundingMode: undefined };
}

/** The forward fused kernel, called directly: tf.fused.* unfuses activations under a tape. */
export function fusedConvForward(x: tf.Tensor4D, filter: tf.Tensor4D, bias: tf.Tensor1D | undefined, c: ConvPart, activation: FusableAct): tf.Tensor4D {
  const kernel = c.depthwise ? 'FusedDepthwiseConv2D' : 'FusedConv2D';
  return tf.engine().runKernel(kernel, { x, filter, bias } as never, { ...attrsOf(c), activation } as never) as tf.Tensor4D;
}

function unfused(x: tf.Tensor4D, filter: tf.Tensor4D, bias: tf.Tensor1D | undefined, c: ConvPart, activation: FusableAct): tf.Tensor4D {
  const args = { x, filter, strides: c.strides, pad: c.pad as 'same', dilations: c.dilations, bias, activation: 'linear' as const };
  const z = c.depthwise ? tf.fused.depthwiseConv2d(args) : tf.fused.conv2d(args);
  return activation === 'relu6' ? tf.relu6(z) : activation === 'relu' ? tf.relu(z) : z;
}

/**
 * y = act(conv(x, filter) + bias), differentiable in x, filter and bias. When `x` carries no
 * gradient (cached features, the frozen prefix's output) its gradient is not computed.
 */
export function convBnAct(x: tf.Tensor4D, filter: tf.Tensor4D, bias: tf.Tensor1D | undefined, c: ConvPart, activation: FusableAct): tf.Tensor4D {
  if (!tf.getKernel(ACT_GRAD_KERNEL, tf.getBackend())) return unfused(x, filter, bias, c, activation);
  const needInputGrad = isOnTape(x);
  const b = bias ?? tf.zeros([filter.shape[c.depthwise ? 2 : 3] * (c.depthwise ? filter.shape[3] : 1)]);
  const op = tf.customGrad((xx, ff, bb, save) => {
    const y = fusedConvForward(xx as tf.Tensor4D, ff as tf.Tensor4D, bb as tf.Tensor1D, c, activation);
    (save as tf.GradSaveFunc)([xx as tf.Tensor, ff as tf.Tensor, y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, sf, sy] = saved as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
        const [dz, db] = runActGradBias(dy, sy, activation);
        const a = attrsOf(c);
        const dx = needInputGrad
          ? (tf.engine().runKernel(c.depthwise ? 'DepthwiseConv2dNativeBackpropInput' : 'Conv2DBackpropInput', { dy: dz, filter: sf }, { ...a, inputShape: sx.shape } as never) as tf.Tensor)
          : tf.zerosLike(sx);
        const df = tf.engine().runKernel(c.depthwise ? 'DepthwiseConv2dNativeBackpropFilter' : 'Conv2DBackpropFilter', { x: sx, dy: dz }, { ...a, filterShape: sf.shape } as never) as tf.Tensor;
        dz.dispose();
        return [dx, df, db];
      },
    };
  });
  return op(x, filter, b) as tf.Tensor4D;
}
