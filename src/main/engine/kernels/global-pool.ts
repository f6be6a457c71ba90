/**
 * Global average pooling of NHWC features ([n, h, w, c] -> [n, c]) as one kernel with a
 * one-kernel gradient. tfjs runs `mean(x, [1, 2])` on wasm as a transpose of the whole
 * feature map followed by a reduction (and its gradient as a broadcast plus a division),
 * which cost more than the head itself; summing each image's h*w rows of c floats in
 * place is one pass over the features. With two threads each kernel gives half of the
 * images to the GEMM helper thread (bit-identical to one thread).
 */
import * as tf from '@tensorflow/tfjs';
import { BackendIO, type TensorInfo } from './backend-io';
import { LIST_CALL, LIST_COPY, helperThread } from './gemm-simd';
import { heapOffset, simdFor } from './simd';

export const GLOBAL_AVG_POOL = 'FinetuneGlobalAvgPool';
const GLOBAL_AVG_POOL_GRAD = 'FinetuneGlobalAvgPoolGrad';
/** Rows summed in float32 before flushing into the float64 totals. */
const BLOCK_ROWS = 64;

function io(backend: tf.KernelBackend): BackendIO {
  return new BackendIO(backend, 'typedArrayFromHeap' in backend ? 'wasm' : 'cpu');
}

function forward(args: { inputs: { x: TensorInfo }; backend: tf.KernelBackend }): TensorInfo {
  const { x } = args.inputs;
  const [n, h, w, c] = x.shape;
  const rows = h * w;
  const b = io(args.backend);
  const out = b.alloc([n, c]);
  const simd = b.kind === 'wasm' && c % 4 === 0 ? simdFor(args.backend) : null;
  const totals = new Float64Array(c);
  if (!simd) {
    const v = b.view(x);
    const o = b.view(out);
    for (let i = 0; i < n; i++) {
      totals.fill(0);
      for (let r = 0, k = i * rows * c; r < rows; r++, k += c) for (let j = 0; j < c; j++) totals[j] += v[k + j];
      for (let j = 0; j < c; j++) o[i * c + j] = totals[j] / rows;
    }
    return out;
  }
  // Float32 sums of BLOCK_ROWS rows (SIMD), one per image and block, then added in float64.
  // With two threads the GEMM helper sums the second half of the images (the same calls).
  const blocksPerImage = Math.ceil(rows / BLOCK_ROWS);
  const blocks = b.alloc([n * blocksPerImage, c], true);
  const [xAt, bAt] = [heapOffset(args.backend, x), heapOffset(args.backend, blocks)];
  const sums = (i: number, call: (args: [number, number, number, number, number, number]) => void) => {
    for (let k = 0; k < blocksPerImage; k++) call([xAt + (i * rows + k * BLOCK_ROWS) * c * 4, bAt + (i * blocksPerImage + k) * c * 4, Math.min(BLOCK_ROWS, rows - k * BLOCK_ROWS), c / 4, 0, 0]);
  };
  const helper = n > 1 ? helperThread(args.backend) : null;
  const mine = helper ? Math.ceil(n / 2) : n;
  const here = () => {
    for (let i = 0; i < mine; i++) sums(i, (a) => simd.rowSum(a[0], a[1], a[2], a[3]));
  };
  if (helper) {
    const [id] = helper.functionIds(simd.module, ['row_sum']);
    const list: number[] = [];
    for (let i = mine; i < n; i++) sums(i, (a) => list.push(LIST_CALL, id, a.length, ...a));
    helper.alongside(list, here);
  } else here();
  const part = b.view(blocks);
  const o = b.view(out);
  for (let i = 0; i < n; i++) {
    totals.fill(0);
    for (let k = 0; k < blocksPerImage; k++) for (let j = 0, p = (i * blocksPerImage + k) * c; j < c; j++) totals[j] += part[p + j];
    for (let j = 0; j < c; j++) o[i * c + j] = totals[j] / rows;
  }
  b.dispose(blocks);
  return out;
}

function backward(args: { inputs: { dy: TensorInfo; x: TensorInfo }; backend: tf.KernelBackend }): TensorInfo {
  const { dy, x } = args.inputs;
  const [n, h, w, c] = x.shape;
  const rows = h * w;
  const b = io(args.backend);
  const dx = b.alloc([...x.shape]);
  const g = b.view(dy);
  const out = b.view(dx);
  // Each image's first row is dy / rows; the others are copies of it. With two threads the
  // GEMM helper copies the second half of the images' rows.
  for (let i = 0; i < n; i++) for (let j = 0; j < c; j++) out[i * rows * c + j] = g[i * c + j] / rows;
  const helper = n > 1 ? helperThread(args.backend) : null; // null off wasm too
  const mine = helper ? Math.ceil(n / 2) : n;
  const here = () => {
    for (let i = 0; i < mine; i++) {
      const row = out.subarray(i * rows * c, i * rows * c + c);
      for (let r = 1, o = i * rows * c + c; r < rows; r++, o += c) out.set(row, o);
    }
  };
  if (helper) {
    const at = heapOffset(args.backend, dx) / 4;
    const list: number[] = [];
    for (let i = mine; i < n; i++) for (let r = 1, o = at + i * rows * c; r < rows; r++) list.push(LIST_COPY, o + r * c, o, c);
    helper.alongside(list, here);
  } else here();
  return dx;
}

let registered = false;

/** Register both kernels (wasm, cpu) and the gradient (idempotent). */
export function registerGlobalPoolKernels(): void {
  if (registered) return;
  for (const backendName of ['wasm', 'cpu']) {
    if (!tf.getKernel(GLOBAL_AVG_POOL, backendName)) tf.registerKernel({ kernelName: GLOBAL_AVG_POOL, backendName, kernelFunc: forward as unknown as tf.KernelConfig['kernelFunc'] });
    if (!tf.getKernel(GLOBAL_AVG_POOL_GRAD, backendName)) tf.registerKernel({ kernelName: GLOBAL_AVG_POOL_GRAD, backendName, kernelFunc: backward as unknown as tf.KernelConfig['kernelFunc'] });
  }
  if (!tf.getGradient(GLOBAL_AVG_POOL)) {
    tf.registerGradient({
      kernelName: GLOBAL_AVG_POOL,
      // Saved for its shape only (tfjs clones saved tensors; our wasm Identity shares the data).
      inputsToSave: ['x'],
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => ({
        x: () => tf.engine().runKernel(GLOBAL_AVG_POOL_GRAD, { dy: dy as tf.Tensor, x: saved[0] }) as tf.Tensor,
      }),
    });
  }
  registered = true;
}

/** Mean over height and width of NHWC features: [n, h, w, c] -> [n, c]. */
export function globalAvgPool(x: tf.Tensor4D): tf.Tensor2D {
  if (!tf.getKernel(GLOBAL_AVG_POOL, tf.getBackend())) return tf.mean(x, [1, 2]) as tf.Tensor2D;
  return tf.engine().runKernel(GLOBAL_AVG_POOL, { x } as never) as tf.Tensor2D;
}
