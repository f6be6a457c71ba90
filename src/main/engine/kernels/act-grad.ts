/**
 * One pass over dy and the unit's output y for the backward of act(conv + bias): the
 * activation mask applied to dy (ReLU6: 0 < y < 6, ReLU: y > 0) and the bias gradient
 * (its per-channel sum). tfjs composes the same from four to six kernels per unit. On wasm
 * the pass also counts the outputs inside the mask: the share is recorded for dz, and the
 * 1x1 conv gradients skip its zeros when few remain (sparse-grad.ts). With two threads the
 * GEMM helper takes the second half of the row blocks (each block sums into its own slot,
 * added up in order: the same result on one thread or two).
 */
import * as tf from '@tensorflow/tfjs';
import { BackendIO, type TensorInfo } from './backend-io';
import { LIST_CALL, helperThread } from './gemm-simd';
import { heapOffset, simdFor } from './simd';
import { noteMaskedShare } from './sparse-grad';

export const ACT_GRAD_KERNEL = 'FinetuneActGradBias';

export type FusableAct = 'linear' | 'relu' | 'relu6';

/** dz = dy * act'(y) (written into dz) and the per-channel sums of dz (into db). */
export function actGradBias(dy: Float32Array, y: Float32Array, channels: number, act: FusableAct, dz: Float32Array, db: Float32Array): void {
  const n = dy.length;
  // Branch-free masks: half the activations sit at 0, so a branch would mispredict constantly.
  if (act === 'linear') dz.set(dy);
  else if (act === 'relu') for (let i = 0; i < n; i++) dz[i] = dy[i] * +(y[i] > 0);
  else for (let i = 0; i < n; i++) { const v = y[i]; dz[i] = dy[i] * +(v > 0 && v < 6); }
  const sums = new Float64Array(channels);
  for (let i = 0; i < n; i += channels) for (let c = 0; c < channels; c++) sums[c] += dz[i + c];
  for (let c = 0; c < channels; c++) db[c] = sums[c];
}

const BOUNDS: Record<FusableAct, [number, number]> = { linear: [-Infinity, Infinity], relu: [0, Infinity], relu6: [0, 6] };
/** Rows summed in float32 before flushing into the float64 totals (keeps the sums accurate). */
const BLOCK_ROWS = 128;
/** Below this many values a second thread costs more than it saves. */
const SPLIT_MIN = 1 << 16;

function kernelFunc(args: { inputs: { dy: TensorInfo; y: TensorInfo }; backend: tf.KernelBackend; attrs: { activation: FusableAct } }): TensorInfo[] {
  const { dy, y } = args.inputs;
  const b = new BackendIO(args.backend, 'typedArrayFromHeap' in args.backend ? 'wasm' : 'cpu');
  const channels = dy.shape[dy.shape.length - 1];
  const dz = b.alloc([...dy.shape]);
  const db = b.alloc([channels]);
  const simd = b.kind === 'wasm' && channels % 4 === 0 ? simdFor(args.backend) : null;
  if (!simd) {
    actGradBias(b.view(dy), b.view(y), channels, args.attrs.activation, b.view(dz), b.view(db));
    return [dz, db];
  }
  const [lo, hi] = BOUNDS[args.attrs.activation];
  const rows = dy.shape.reduce((a, d) => a * d, 1) / channels;
  const rowBytes = channels * 4;
  // Each block of rows sums into its own slot (the sums, then 4 int32 lane counts), added up
  // in block order below: the same result whichever thread ran a block.
  const blocks = Math.ceil(rows / BLOCK_ROWS);
  const slot = channels + 4;
  const partials = b.alloc([blocks * slot], true);
  const at = (t: TensorInfo) => heapOffset(args.backend, t);
  const argsOf = (k: number): Parameters<typeof simd.actMaskSum> => {
    const r0 = k * BLOCK_ROWS;
    const p = at(partials) + k * slot * 4;
    return [at(dy) + r0 * rowBytes, at(y) + r0 * rowBytes, at(dz) + r0 * rowBytes, Math.min(BLOCK_ROWS, rows - r0), channels / 4, lo, hi, p, p + channels * 4];
  };
  const helper = blocks > 1 && rows * channels >= SPLIT_MIN ? helperThread(args.backend) : null;
  const mine = helper ? Math.ceil(blocks / 2) : blocks;
  const here = () => {
    for (let k = 0; k < mine; k++) simd.actMaskSum(...argsOf(k));
  };
  if (helper) {
    // The second half of the blocks on the helper thread.
    const [id] = helper.functionIds(simd.module, ['act_mask_sum']);
    const list: number[] = [];
    for (let k = mine; k < blocks; k++) list.push(LIST_CALL, id, 9, ...argsOf(k));
    helper.alongside(list, here);
  } else here();
  const sums = b.view(partials);
  const lanes = new Int32Array(sums.buffer, sums.byteOffset, sums.length);
  const totals = new Float64Array(channels);
  let inside = 0;
  for (let k = 0; k < blocks; k++) {
    for (let c = 0; c < channels; c++) totals[c] += sums[k * slot + c];
    for (let l = 0; l < 4; l++) inside += lanes[k * slot + channels + l];
  }
  b.view(db).set(totals);
  b.dispose(partials);
  if (args.attrs.activation !== 'linear') noteMaskedShare(dz.dataId, inside / (rows * channels));
  return [dz, db];
}

/** Register the kernel for wasm and cpu (idempotent). */
export function registerActGradKernel(): void {
  for (const backendName of ['wasm', 'cpu']) {
    if (tf.getKernel(ACT_GRAD_KERNEL, backendName)) continue;
    tf.registerKernel({ kernelName: ACT_GRAD_KERNEL, backendName, kernelFunc: kernelFunc as unknown as tf.KernelConfig['kernelFunc'] });
  }
}

/** Run the kernel: [dz, dbias]. */
export function runActGradBias(dy: tf.Tensor, y: tf.Tensor, activation: FusableAct): [tf.Tensor, tf.Tensor1D] {
  return tf.engine().runKernel(ACT_GRAD_KERNEL, { dy, y }, { activation } as never) as unknown as [tf.Tensor, tf.Tensor1D];
}
