/**
 * A trainable conv + BatchNorm (inference mode, already folded into filter and bias by
 * the caller, inside the tape) + ReLU/ReLU6 unit as one registered op with a registered
 * gradient: forward is the backend's fused kernel; backward is one pass for the activation
 * mask and the bias sums, then the conv's input and filter gradients. The fold's own
 * gradient (into kernel, gamma, beta) is the fold kernel's. About 4 kernels per unit instead of the 15-20 tfjs
 * runs for conv + BatchNorm + ReLU6.
 */
import * as tf from '@tensorflow/tfjs';
import type { ConvPart } from '../net/compile';
import { ACT_GRAD_KERNEL, runActGradBias, type FusableAct } from './act-grad';
import { BackendIO, type TensorInfo } from './backend-io';
import { depthwiseDirect, dwGeometry } from './depthwise-direct';
import { gemm, gemmFor, gemmThreadCount } from './gemm-simd';

export const CONV_BN_ACT_KERNEL = 'FinetuneConvBnAct';

interface UnitAttrs {
  strides: [number, number] | number;
  pad: ConvPart['pad'];
  dilations: [number, number] | number;
  dataFormat: 'NHWC';
  dimRoundingMode: undefined;
  activation: FusableAct;
  depthwise: boolean;
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

const CLAMPS: Record<FusableAct, { lo?: number; hi?: number }> = { linear: {}, relu: { lo: 0 }, relu6: { lo: 0, hi: 6 } };

/**
 * A 1x1 stride-1 unpadded conv on wasm is one GEMM over all pixels: ours, with the bias and
 * the activation in its store (XNNPACK would repack the filter, new every step, each call).
 */
function pointwiseForward(args: { inputs: { x: TensorInfo; filter: TensorInfo; bias: TensorInfo }; backend: tf.KernelBackend; attrs: UnitAttrs }): TensorInfo | null {
  const { x, filter, bias } = args.inputs;
  const a = args.attrs;
  if (a.depthwise || !('typedArrayFromHeap' in args.backend)) return null;
  const [kh, kw, cin, cout] = filter.shape;
  if (kh !== 1 || kw !== 1 || cout % 4 !== 0 || x.shape.length !== 4) return null;
  const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filter.shape as [number, number, number, number], a.strides, a.dilations, a.pad as 'same', a.dimRoundingMode);
  const p = info.padInfo;
  if (info.strideHeight !== 1 || info.strideWidth !== 1 || p.top || p.left || p.bottom || p.right) return null;
  const g = gemmFor(args.backend);
  if (!g) return null;
  const io = new BackendIO(args.backend, 'wasm');
  const m = x.shape[0] * x.shape[1] * x.shape[2];
  const y = io.alloc([x.shape[0], x.shape[1], x.shape[2], cout]);
  gemm(io, g, { a: x, aRowStride: cin, aColStride: 1, b: filter, ldb: cout, c: y, ldc: cout, m, n: cout, k: cin, bias, ...CLAMPS[a.activation] });
  return y;
}

/**
 * A depthwise conv on wasm: our direct kernel (depthwise-direct.ts), bias and activation in
 * its store; with two threads it shares the images with the GEMM helper. (XNNPACK's
 * two-thread kernel was slower on a training step's 7x7 layers than ours on one thread.)
 */
function depthwiseForward(args: { inputs: { x: TensorInfo; filter: TensorInfo; bias: TensorInfo }; backend: tf.KernelBackend; attrs: UnitAttrs }): TensorInfo | null {
  const { x, filter, bias } = args.inputs;
  const a = args.attrs;
  if (!a.depthwise || !('typedArrayFromHeap' in args.backend) || x.shape.length !== 4) return null;
  const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filter.shape as [number, number, number, number], a.strides, a.dilations, a.pad as 'same', a.dimRoundingMode, true);
  const g = dwGeometry(info);
  const clamp = CLAMPS[a.activation];
  return g && depthwiseDirect(new BackendIO(args.backend, 'wasm'), g, x, filter, bias, clamp.lo, clamp.hi);
}

/** Forward: the backend's own fused conv kernel on the same inputs (on wasm: our GEMM for 1x1 convs, our depthwise kernel). */
function forwardKernel(args: { inputs: { x: TensorInfo; filter: TensorInfo; bias: TensorInfo }; backend: tf.KernelBackend; attrs: UnitAttrs }): TensorInfo {
  const ours = pointwiseForward(args) ?? depthwiseForward(args);
  if (ours) return ours;
  const { depthwise, ...attrs } = args.attrs;
  const name = depthwise ? 'FusedDepthwiseConv2D' : 'FusedConv2D';
  const k = tf.getKernel(name, tf.getBackend());
  if (!k) throw new Error(`internal: kernel ${name} is not registered for ${tf.getBackend()}`);
  return k.kernelFunc({ inputs: args.inputs as never, backend: args.backend, attrs: attrs as never }) as TensorInfo;
}

let registered = false;

/** Register the unit's kernel (wasm, cpu) and its gradient (idempotent). */
export function registerConvBnActKernel(): void {
  if (registered) return;
  for (const backendName of ['wasm', 'cpu']) {
    if (!tf.getKernel(CONV_BN_ACT_KERNEL, backendName)) tf.registerKernel({ kernelName: CONV_BN_ACT_KERNEL, backendName, kernelFunc: forwardKernel as unknown as tf.KernelConfig['kernelFunc'] });
  }
  if (!tf.getGradient(CONV_BN_ACT_KERNEL)) {
    tf.registerGradient({
      kernelName: CONV_BN_ACT_KERNEL,
      inputsToSave: ['x', 'filter'],
      outputsToSave: [true],
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
        const a = attrs as unknown as UnitAttrs;
        const [x, filter, y] = saved as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
        // Shared by the three input gradients; only those on the path from the variables are
        // asked for (the tape prunes the rest: no input gradient for cached features).
        const [dz, db] = runActGradBias(dy as tf.Tensor, y, a.activation);
        const conv = { strides: a.strides, pad: a.pad, dilations: a.dilations, dataFormat: a.dataFormat, dimRoundingMode: a.dimRoundingMode };
        return {
          x: () => tf.engine().runKernel(a.depthwise ? 'DepthwiseConv2dNativeBackpropInput' : 'Conv2DBackpropInput', { dy: dz, filter }, { ...conv, inputShape: x.shape } as never) as tf.Tensor,
          filter: () => tf.engine().runKernel(a.depthwise ? 'DepthwiseConv2dNativeBackpropFilter' : 'Conv2DBackpropFilter', { x, dy: dz }, { ...conv, filterShape: filter.shape } as never) as tf.Tensor,
          bias: () => db,
        };
      },
    });
  }
  registered = true;
}

/**
 * A frozen conv's forward on one wasm thread, through the unit's kernel: our GEMM for 1x1
 * convs (the backend's fused kernel for the rest). XNNPACK's own 1x1 kernel is faster with
 * two threads, so null there (and off wasm): the caller runs tf.fused.conv2d.
 */
export function frozenConvForward(x: tf.Tensor4D, filter: tf.Tensor4D, bias: tf.Tensor1D | undefined, c: ConvPart, activation: FusableAct): tf.Tensor4D | null {
  if (c.depthwise || filter.shape[0] !== 1 || filter.shape[1] !== 1 || gemmThreadCount() > 1 || tf.getBackend() !== 'wasm' || !tf.getKernel(CONV_BN_ACT_KERNEL, 'wasm')) return null;
  return convBnAct(x, filter, bias, c, activation);
}

/**
 * y = act(conv(x, filter) + bias), differentiable in x, filter and bias, as one op. When
 * `x` carries no gradient (cached features, the frozen prefix's output) its gradient is
 * never computed.
 */
export function convBnAct(x: tf.Tensor4D, filter: tf.Tensor4D, bias: tf.Tensor1D | undefined, c: ConvPart, activation: FusableAct): tf.Tensor4D {
  if (!tf.getKernel(ACT_GRAD_KERNEL, tf.getBackend()) || !tf.getKernel(CONV_BN_ACT_KERNEL, tf.getBackend())) return unfused(x, filter, bias, c, activation);
  const b = bias ?? tf.zeros([filter.shape[c.depthwise ? 2 : 3] * (c.depthwise ? filter.shape[3] : 1)]);
  const attrs: UnitAttrs = { ...attrsOf(c), activation, depthwise: c.depthwise };
  return tf.engine().runKernel(CONV_BN_ACT_KERNEL, { x, filter, bias: b } as never, attrs as never) as tf.Tensor4D;
}
