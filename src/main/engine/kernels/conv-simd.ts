/**
 * Filter gradients of convolutions with few channels, on wasm SIMD: dW = X^T dY where X has
 * hundreds of thousands of rows (pixels) but only a few channels. XNNPACK handles that shape
 * poorly (it packs the huge dY as "weights" on every call, then runs a GEMM with tiny M and
 * N), while a running sum of per-row outer products keeps the [cin, cout] block in cache.
 * Rows are summed in float32 blocks flushed into float64 totals.
 */
import type * as tf from '@tensorflow/tfjs';
import type { BackendIO, TensorInfo } from './backend-io';
import { im2colRows, type ConvInfo } from './loops';
import { heapOffset, type SimdKernels } from './simd';

/** Largest [cin, cout] block worth accumulating this way (64 KB of float32). */
export const OUTER_MAX = 16384;
const ROWS_PER_FLUSH = 256;
/** Max floats in one im2col buffer (16 MB). */
const COL_FLOATS = 4 * 1024 * 1024;

/**
 * totals[a][b] = sum over rows of x[row][a] * y[row][b], x and y contiguous row-major
 * ([rows, a] and [rows, b]) at byte offsets; b must be divisible by 4.
 */
function outerSum(b: BackendIO, simd: SimdKernels, xAt: number, yAt: number, rows: number, na: number, nb: number, acc: TensorInfo, accAt: number, totals: Float64Array): void {
  for (let r0 = 0; r0 < rows; r0 += ROWS_PER_FLUSH) {
    const n = Math.min(ROWS_PER_FLUSH, rows - r0);
    b.view(acc).fill(0);
    simd.outerAcc(xAt + r0 * na * 4, yAt + r0 * nb * 4, accAt, n, na, nb / 4);
    const v = b.view(acc);
    for (let i = 0; i < v.length; i++) totals[i] += v[i];
  }
}

/** dW of a 1x1 stride-1 conv: [cin, cout] from x [m, cin] and dy [m, cout]; null if unsuited. */
export function pointwiseFilterGradSimd(b: BackendIO, backend: tf.KernelBackend, simd: SimdKernels, x: TensorInfo, dy: TensorInfo, m: number, cin: number, cout: number, filterShape: number[]): TensorInfo | null {
  if (cin * cout > OUTER_MAX || (cout % 4 !== 0 && cin % 4 !== 0)) return null;
  const swap = cout % 4 !== 0; // accumulate dW^T [cout, cin] instead, transposed at the end
  const out = b.alloc(filterShape);
  const acc = b.alloc([cin * cout]);
  const totals = new Float64Array(cin * cout);
  const [xAt, yAt] = [heapOffset(backend, x), heapOffset(backend, dy)];
  if (swap) outerSum(b, simd, yAt, xAt, m, cout, cin, acc, heapOffset(backend, acc), totals);
  else outerSum(b, simd, xAt, yAt, m, cin, cout, acc, heapOffset(backend, acc), totals);
  const o = b.view(out);
  if (swap) for (let a = 0; a < cin; a++) for (let c = 0; c < cout; c++) o[a * cout + c] = totals[c * cin + a];
  else o.set(totals);
  b.dispose(acc);
  return out;
}

/** dW of a general conv through row-major im2col chunks and outer products; null if unsuited. */
export function convFilterGradSimd(b: BackendIO, backend: tf.KernelBackend, simd: SimdKernels, x: TensorInfo, dy: TensorInfo, info: ConvInfo, filterShape: number[]): TensorInfo | null {
  const k = info.filterHeight * info.filterWidth * info.inChannels;
  const cout = info.outChannels;
  if (k * cout > OUTER_MAX || cout % 4 !== 0) return null;
  const rows = info.outHeight * info.outWidth;
  const per = Math.max(1, Math.min(info.batchSize, Math.floor(COL_FLOATS / (rows * k))));
  const out = b.alloc(filterShape);
  const acc = b.alloc([k * cout]);
  const col = b.alloc([per * rows * k]);
  const totals = new Float64Array(k * cout);
  for (let n0 = 0; n0 < info.batchSize; n0 += per) {
    const n1 = Math.min(info.batchSize, n0 + per);
    im2colRows(b.view(x), info, n0, n1, b.view(col));
    outerSum(b, simd, heapOffset(backend, col), heapOffset(backend, dy) + n0 * rows * cout * 4, (n1 - n0) * rows, k, cout, acc, heapOffset(backend, acc), totals);
  }
  b.view(out).set(totals);
  b.dispose(acc);
  b.dispose(col);
  return out;
}
