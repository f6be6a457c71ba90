/**
 * Global average pooling of NHWC features ([n, h, w, c] -> [n, c]) as one kernel with a
 * one-kernel gradient. tfjs runs `mean(x, [1, 2])` on wasm as a transpose of the whole
 * feature map followed by a reduction (and its gradient as a broadcast plus a division),
 * which cost more than the head itself; summing each image's h*w rows of c floats in
 * place is one pass over the features.
 */
import * as tf from '@tensorflow/tfjs';
import { BackendIO, type TensorInfo } from './backend-io';
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
  const block = simd ? b.alloc([c]) : null;
  for (let i = 0; i < n; i++) {
    totals.fill(0);
    if (simd && block) {
      for (let r0 = 0; r0 < rows; r0 += BLOCK_ROWS) {
        const k = Math.min(BLOCK_ROWS, rows - r0);
        b.view(block).fill(0);
        simd.rowSum(heapOffset(args.backend, x) + (i * rows + r0) * c * 4, heapOffset(args.backend, block), k, c / 4);
        const part = b.view(block);
        for (let j = 0; j < c; j++) totals[j] += part[j];
      }
    } else {
      const v = b.view(x);
      for (let r = 0, o = i * rows * c; r < rows; r++, o += c) for (let j = 0; j < c; j++) totals[j] += v[o + j];
    }
    const o = b.view(out);
    for (let j = 0; j < c; j++) o[i * c + j] = totals[j] / rows;
  }
  if (block) b.dispose(block);
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
  const row = new Float32Array(c);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < c; j++) row[j] = g[i * c + j] / rows;
    for (let r = 0, o = i * rows * c; r < rows; r++, o += c) out.set(row, o);
  }
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
