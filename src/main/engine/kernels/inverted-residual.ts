/**
 * A frozen inverted-residual block (1x1 expand + act, depthwise + act, 1x1 project + act,
 * optionally + the block's input) as one kernel on one wasm thread, band by band of output
 * rows, so its wide middle tensors never leave the cache. Run layer by layer over a batch,
 * MobileNetV2's early blocks wrote and re-read tens of MB per layer (at 112x112, batch 32,
 * the expanded tensor alone is 77 MB): their 1x1 convs ran at 3 GB/s of stores and a third
 * of the arithmetic rate. Here each band's expanded rows (with the depthwise window's
 * overlap carried over from the band before, never recomputed) and depthwise output live in
 * two scratch buffers of a few hundred KB; only the block's input and output touch memory.
 *
 * The arithmetic is the same kernels' as the layer-by-layer path (our GEMM, the direct
 * depthwise kernel), in the same order per output value, so results match it to rounding.
 */
import * as tf from '@tensorflow/tfjs';
import { BackendIO, type TensorInfo } from './backend-io';
import { depthwiseRowsKernel, dwGeometry, type DwGeometry } from './depthwise-direct';
import { gemm, gemmFor, gemmThreadCount } from './gemm-simd';
import { backendMemory, heapOffset } from './simd';

export const INVERTED_RESIDUAL_KERNEL = 'FinetuneInvertedResidual';

/** A clamp [lo, hi] (a fused ReLU / ReLU6), or null for a linear output. */
export type Clamp = [number, number] | null;

export interface InvertedResidualAttrs {
  /** Whether the block has an expand conv (MobileNetV2's first block has none). */
  expand: boolean;
  expandClamp: Clamp;
  dwClamp: Clamp;
  projectClamp: Clamp;
  /** Add the block's input to its output (stride 1, same channels). */
  residual: boolean;
  /** The depthwise conv's attributes. */
  strides: [number, number];
  pad: 'same' | 'valid' | number[][];
  dilations: [number, number];
}

/** Bytes of the two band buffers together (L2 here is 2 MB a core). */
const BAND_BYTES = 768 * 1024;

interface Inputs {
  x: TensorInfo;
  ef?: TensorInfo;
  eb?: TensorInfo;
  df: TensorInfo;
  db: TensorInfo;
  pf: TensorInfo;
  pb: TensorInfo;
}

/** The depthwise geometry of the block for input `x`, when our kernels handle the whole block. */
function plan(x: number[], inputs: { ef?: number[]; df: number[]; pf: number[] }, a: InvertedResidualAttrs): DwGeometry | null {
  const ce = inputs.df[2];
  if (x.length !== 4 || inputs.pf[3] % 4 !== 0 || (inputs.ef && inputs.ef[3] !== ce) || (!inputs.ef && x[3] !== ce)) return null;
  const info = tf.backend_util.computeConv2DInfo([x[0], x[1], x[2], ce], inputs.df as [number, number, number, number], a.strides, a.dilations, a.pad as 'same', undefined, true);
  const g = dwGeometry(info);
  if (!g || (a.residual && (g.ho !== g.h || g.wo !== g.w || inputs.pf[3] !== x[3]))) return null;
  return g;
}

/** Whether the wasm kernel runs this block here (one thread, SIMD, the shapes it handles). */
export function invertedResidualSupported(x: number[], shapes: { ef?: number[]; df: number[]; pf: number[] }, a: InvertedResidualAttrs): boolean {
  const backend = tf.backend();
  return tf.getBackend() === 'wasm' && gemmThreadCount() === 1 && !!tf.getKernel(INVERTED_RESIDUAL_KERNEL, 'wasm') && !!gemmFor(backend) && plan(x, shapes, a) !== null;
}

function kernelFunc(args: { inputs: Inputs; backend: tf.KernelBackend; attrs: InvertedResidualAttrs }): TensorInfo {
  const { inputs: t, backend, attrs: a } = args;
  const g = plan(t.x.shape, { ef: t.ef?.shape, df: t.df.shape, pf: t.pf.shape }, a);
  const mm = gemmFor(backend);
  const dw = g && depthwiseRowsKernel(backend, g);
  const memory = backendMemory(backend);
  if (!g || !mm || !dw || !memory) throw new Error('internal: the inverted-residual kernel was called for a block it does not handle');
  const io = new BackendIO(backend, 'wasm');
  const [cin, ce, co] = [t.x.shape[3], g.c, t.pf.shape[3]];
  const y = io.alloc([g.n, g.ho, g.wo, co]);
  // Output rows per band: the band's input rows (expanded) plus its depthwise output fit BAND_BYTES.
  const inRowBytes = g.w * ce * 4;
  const outRowBytes = g.wo * ce * 4;
  const band = Math.max(1, Math.min(g.ho, Math.floor((BAND_BYTES - (g.kh - g.sh) * inRowBytes) / (g.sh * inRowBytes + outRowBytes))));
  const inRows = Math.min(g.h, (band - 1) * g.sh + g.kh);
  const e = a.expand ? io.alloc([inRows * g.w * ce]) : null;
  const d = io.alloc([band * g.wo * ce]);
  const clampOf = (c: Clamp) => (c ? { lo: c[0], hi: c[1] } : {});
  const [dlo, dhi] = a.dwClamp ?? [-Infinity, Infinity];
  // Input rows [r0, r1) of the depthwise conv needed for output rows [o0, o1).
  const needed = (o0: number, o1: number) => [Math.max(0, o0 * g.sh - g.pt), Math.min(g.h, (o1 - 1) * g.sh - g.pt + g.kh)];
  for (let n = 0; n < g.n; n++) {
    // Expanded rows [h0, h1) are in e, row r at e + (r - h0) * inRowBytes.
    let [h0, h1] = [0, 0];
    for (let o0 = 0; o0 < g.ho; o0 += band) {
      const o1 = Math.min(g.ho, o0 + band);
      const [r0, r1] = needed(o0, o1);
      let dwIn: number;
      if (e) {
        const eAt = heapOffset(backend, e);
        if (r0 < h1 && r0 >= h0) {
          // Carry the window's overlap to the top of the buffer.
          const heap = new Float32Array(memory.buffer);
          heap.copyWithin(eAt / 4, (eAt + (r0 - h0) * inRowBytes) / 4, (eAt + (h1 - h0) * inRowBytes) / 4);
          [h0, h1] = [r0, h1];
        } else [h0, h1] = [r0, r0];
        const rows = r1 - h1;
        if (rows > 0) {
          gemm(io, mm, { a: t.x, aOffset: (n * g.h + h1) * g.w * cin, aRowStride: cin, aColStride: 1, b: t.ef!, ldb: ce, c: e, cOffset: (h1 - h0) * g.w * ce, ldc: ce, m: rows * g.w, n: ce, k: cin, bias: t.eb, ...clampOf(a.expandClamp) });
          h1 = r1;
        }
        dwIn = heapOffset(backend, e) - h0 * inRowBytes;
      } else {
        dwIn = heapOffset(backend, t.x) + n * g.h * inRowBytes;
      }
      const dAt = heapOffset(backend, d);
      dw(dwIn, heapOffset(backend, t.df), heapOffset(backend, t.db), dAt - o0 * outRowBytes, o0, o1, dlo, dhi);
      const yOffset = (n * g.ho + o0) * g.wo * co;
      if (a.residual) {
        const heap = new Float32Array(memory.buffer);
        const xAt = heapOffset(backend, t.x) / 4 + yOffset;
        heap.copyWithin(heapOffset(backend, y) / 4 + yOffset, xAt, xAt + (o1 - o0) * g.wo * co);
      }
      gemm(io, mm, { a: d, aRowStride: ce, aColStride: 1, b: t.pf, ldb: co, c: y, cOffset: yOffset, ldc: co, m: (o1 - o0) * g.wo, n: co, k: ce, bias: t.pb, accumulate: a.residual, ...clampOf(a.projectClamp) });
    }
  }
  if (e) io.dispose(e);
  io.dispose(d);
  return y;
}

let enabled = process.env.FINETUNE_FUSED_BLOCKS !== '0';

/** Whether frozen blocks run as one kernel (FINETUNE_FUSED_BLOCKS=0 starts with it off). */
export function invertedResidualsEnabled(): boolean {
  return enabled;
}

/** Turn the block kernel on or off; returns the previous setting. */
export function setInvertedResiduals(on: boolean): boolean {
  const was = enabled;
  enabled = on;
  return was;
}

let registered = false;

/** Register the block kernel for wasm (idempotent). */
export function registerInvertedResidualKernel(): void {
  if (registered) return;
  if (!tf.getKernel(INVERTED_RESIDUAL_KERNEL, 'wasm')) tf.registerKernel({ kernelName: INVERTED_RESIDUAL_KERNEL, backendName: 'wasm', kernelFunc: kernelFunc as unknown as tf.KernelConfig['kernelFunc'] });
  registered = true;
}

/** Run the block (call only when invertedResidualSupported). Weights are the folded filters and biases. */
export function invertedResidual(x: tf.Tensor4D, w: { ef?: tf.Tensor; eb?: tf.Tensor; df: tf.Tensor; db: tf.Tensor; pf: tf.Tensor; pb: tf.Tensor }, attrs: InvertedResidualAttrs): tf.Tensor4D {
  const inputs: Record<string, tf.Tensor> = { x, df: w.df, db: w.db, pf: w.pf, pb: w.pb };
  if (w.ef) Object.assign(inputs, { ef: w.ef, eb: w.eb });
  return tf.engine().runKernel(INVERTED_RESIDUAL_KERNEL, inputs as never, attrs as never) as tf.Tensor4D;
}
