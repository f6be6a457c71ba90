/**
 * Folding an inference-mode BatchNorm into a trainable conv, as one op with a hand-written
 * gradient: filter = kernel * s and bias' = beta + (bias - mean) * s, s = gamma / sqrt(var + eps).
 * Backward: dkernel = dfilter * s, dgamma = (sum over the kernel of dfilter * kernel +
 * dbias' * (bias - mean)) / sqrt(var + eps), dbeta = dbias', dbias = dbias' * s. Kernel-sized
 * JS loops replace the ten-odd small tfjs ops (and their tape entries) per unit.
 */
import * as tf from '@tensorflow/tfjs';
import { BackendIO, type TensorInfo } from './backend-io';
import { heapOffset, simdFor, type SimdKernels } from './simd';

const FORWARD = 'FinetuneFoldConvBn';
const BACKWARD = 'FinetuneFoldConvBnGrad';

interface FoldAttrs {
  epsilon: number;
  hasGamma: boolean;
  hasBeta: boolean;
  hasBias: boolean;
}

function io(backend: tf.KernelBackend): BackendIO {
  return new BackendIO(backend, 'typedArrayFromHeap' in backend ? 'wasm' : 'cpu');
}

function scales(b: BackendIO, inputs: Record<string, TensorInfo>, a: FoldAttrs, channels: number): { s: Float64Array; inv: Float64Array } {
  const variance = b.view(inputs.variance);
  const gamma = a.hasGamma ? b.view(inputs.gamma) : null;
  const inv = new Float64Array(channels);
  const s = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    inv[c] = 1 / Math.sqrt(variance[c] + a.epsilon);
    s[c] = gamma ? gamma[c] * inv[c] : inv[c];
  }
  return { s, inv };
}

/** SIMD on wasm when the channels come in fours: the kernel-sized loops as strided multiply-adds. */
function simdOf(b: BackendIO, channels: number): SimdKernels | null {
  return b.kind === 'wasm' && channels % 4 === 0 ? simdFor(b.backend) : null;
}

/** out[row][c] = x[row][c] * s[c] for every kernel row (out must be zeroed). */
function scaleRows(b: BackendIO, simd: SimdKernels, x: TensorInfo, s: Float64Array, out: TensorInfo): void {
  const channels = s.length;
  const s32 = b.fromArray([channels], Float32Array.from(s));
  const at = (t: TensorInfo) => heapOffset(b.backend, t);
  const rows = x.shape.reduce((p, q) => p * q, 1) / channels;
  simd.fmaStrided(at(out), at(x), at(s32), channels / 4, rows, channels * 4, channels * 4, 0);
  b.dispose(s32);
}

function forward(args: { inputs: Record<string, TensorInfo>; backend: tf.KernelBackend; attrs: FoldAttrs }): TensorInfo[] {
  const { inputs, attrs: a } = args;
  const b = io(args.backend);
  const channels = inputs.mean.shape[0];
  const filter = b.alloc([...inputs.kernel.shape]);
  const bias = b.alloc([channels]);
  const { s } = scales(b, inputs, a, channels);
  const simd = simdOf(b, channels);
  if (simd) {
    b.view(filter).fill(0);
    scaleRows(b, simd, inputs.kernel, s, filter);
  } else {
    const k = b.view(inputs.kernel);
    const f = b.view(filter);
    for (let i = 0; i < k.length; i += channels) for (let c = 0; c < channels; c++) f[i + c] = k[i + c] * s[c];
  }
  const mean = b.view(inputs.mean);
  const beta = a.hasBeta ? b.view(inputs.beta) : null;
  const convBias = a.hasBias ? b.view(inputs.bias) : null;
  const out = b.view(bias);
  for (let c = 0; c < channels; c++) out[c] = (beta ? beta[c] : 0) + ((convBias ? convBias[c] : 0) - mean[c]) * s[c];
  return [filter, bias];
}

function backward(args: { inputs: Record<string, TensorInfo>; backend: tf.KernelBackend; attrs: FoldAttrs }): TensorInfo[] {
  const { inputs, attrs: a } = args;
  const b = io(args.backend);
  const channels = inputs.mean.shape[0];
  const dKernel = b.alloc([...inputs.kernel.shape]);
  const dGamma = b.alloc([channels]);
  const dBias = b.alloc([channels]);
  const { s, inv } = scales(b, inputs, a, channels);
  const ds = new Float64Array(channels);
  const simd = simdOf(b, channels);
  if (simd) {
    // dkernel = dfilter * s; ds = column sums of dfilter * kernel (float32 sums, as the GEMMs).
    b.view(dKernel).fill(0);
    scaleRows(b, simd, inputs.dFilter, s, dKernel);
    const sums = b.alloc([channels], true);
    const at = (t: TensorInfo) => heapOffset(args.backend, t);
    simd.fmaStrided(at(sums), at(inputs.dFilter), at(inputs.kernel), channels / 4, inputs.kernel.shape.reduce((p, q) => p * q, 1) / channels, 0, channels * 4, channels * 4);
    ds.set(b.view(sums));
    b.dispose(sums);
  } else {
    const dF = b.view(inputs.dFilter);
    const k = b.view(inputs.kernel);
    const dk = b.view(dKernel);
    for (let i = 0; i < k.length; i += channels) {
      for (let c = 0; c < channels; c++) {
        dk[i + c] = dF[i + c] * s[c];
        ds[c] += dF[i + c] * k[i + c];
      }
    }
  }
  const dB = b.view(inputs.dBias);
  const mean = b.view(inputs.mean);
  const convBias = a.hasBias ? b.view(inputs.bias) : null;
  const dg = b.view(dGamma);
  const db = b.view(dBias);
  for (let c = 0; c < channels; c++) {
    dg[c] = (ds[c] + dB[c] * ((convBias ? convBias[c] : 0) - mean[c])) * inv[c];
    db[c] = dB[c] * s[c];
  }
  return [dKernel, dGamma, dBias];
}

/** Register both kernels for wasm and cpu, and the forward's gradient (idempotent). */
export function registerFoldKernels(): void {
  for (const backendName of ['wasm', 'cpu']) {
    for (const [kernelName, fn] of [[FORWARD, forward], [BACKWARD, backward]] as const) {
      if (!tf.getKernel(kernelName, backendName)) tf.registerKernel({ kernelName, backendName, kernelFunc: fn as unknown as tf.KernelConfig['kernelFunc'] });
    }
  }
  if (!tf.getGradient(FORWARD)) {
    tf.registerGradient({
      kernelName: FORWARD,
      inputsToSave: ['kernel', 'mean', 'variance', 'gamma', 'bias'],
      gradFunc: (dys: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
        const a = attrs as unknown as FoldAttrs;
        const [dFilter, dBiasOut] = dys as tf.Tensor[];
        const [kernel, mean, variance, gamma, bias] = saved;
        const named: Record<string, tf.Tensor> = { dFilter, dBias: dBiasOut, kernel, mean, variance, gamma, bias };
        // Computed now: the tape wraps each input's gradient call in its own tidy.
        const [dKernel, dGamma, dBias] = tf.engine().runKernel(BACKWARD, named as never, attrs) as unknown as tf.Tensor[];
        const out: Record<string, () => tf.Tensor> = {
          kernel: () => dKernel,
          mean: () => tf.zerosLike(mean),
          variance: () => tf.zerosLike(variance),
        };
        out.gamma = a.hasGamma ? () => dGamma : () => tf.zerosLike(gamma);
        out.beta = a.hasBeta ? () => dBiasOut.clone() : () => tf.zerosLike(mean);
        out.bias = a.hasBias ? () => dBias : () => tf.zerosLike(bias);
        return out;
      },
    });
  }
}

export function hasFoldKernels(): boolean {
  return !!tf.getKernel(FORWARD, tf.getBackend());
}

export interface FoldInputs {
  kernel: tf.Tensor4D;
  gamma?: tf.Tensor1D;
  beta?: tf.Tensor1D;
  bias?: tf.Tensor1D;
  /** Moving statistics: constants here (training them goes through the batch-statistics path). */
  mean: tf.Tensor1D;
  variance: tf.Tensor1D;
  epsilon: number;
}

/** Folded {filter, bias}, differentiable in kernel, gamma, beta and bias (one kernel each way). */
export function foldConvBnOp(p: FoldInputs): { filter: tf.Tensor4D; bias: tf.Tensor1D } {
  const attrs: FoldAttrs = { epsilon: p.epsilon, hasGamma: !!p.gamma, hasBeta: !!p.beta, hasBias: !!p.bias };
  // Absent parameters get a placeholder (the flags say to ignore it) so every input name exists.
  const inputs = { kernel: p.kernel, mean: p.mean, variance: p.variance, gamma: p.gamma ?? p.mean, beta: p.beta ?? p.mean, bias: p.bias ?? p.mean };
  const [filter, bias] = tf.engine().runKernel(FORWARD, inputs as never, attrs as never) as unknown as [tf.Tensor4D, tf.Tensor1D];
  return { filter, bias };
}
