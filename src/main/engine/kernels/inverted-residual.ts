/**
 * A frozen inverted-residual block (1x1 expand + act, depthwise + act, 1x1 project + act,
 * optionally + the block's input) as one kernel on wasm, band by band of output
 * rows, so its wide middle tensors never leave the cache. Run layer by layer over a batch,
 * MobileNetV2's early blocks wrote and re-read tens of MB per layer (at 112x112, batch 32,
 * the expanded tensor alone is 77 MB): their 1x1 convs ran at 3 GB/s of stores and a third
 * of the arithmetic rate. Here each band's expanded rows (with the depthwise window's
 * overlap carried over from the band before, never recomputed) and depthwise output live in
 * two scratch buffers of a few hundred KB; only the block's input and output touch memory.
 *
 * With two threads the images are split between this thread and our GEMM helper thread
 * (rows, for a single image): the helper runs a recorded list of the same calls on its own
 * buffers. Per output value the arithmetic is the same at any thread count.
 */
import * as tf from '@tensorflow/tfjs';
import { BackendIO, type TensorInfo } from './backend-io';
import { depthwiseRowsKernel, dwGeometry, type DwGeometry } from './depthwise-direct';
import { GEMM_SCRATCH_FLOATS, LIST_COPY, gemmFor, gemmOnThread, gemmThreadCount, helperThread } from './gemm-simd';
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

/**
 * Whether the wasm kernel runs this block here: SIMD, the shapes it handles, and one thread
 * or our helper thread for the second (with XNNPACK's threads and no helper, layer by layer).
 */
export function invertedResidualSupported(x: number[], shapes: { ef?: number[]; df: number[]; pf: number[] }, a: InvertedResidualAttrs): boolean {
  const backend = tf.backend();
  if (tf.getBackend() !== 'wasm' || !tf.getKernel(INVERTED_RESIDUAL_KERNEL, 'wasm') || !gemmFor(backend) || plan(x, shapes, a) === null) return false;
  return gemmThreadCount() === 1 || helperThread(backend) !== null;
}

/** One thread's share: output rows [o0, o1) of image n, for each segment. */
type Segment = [n: number, o0: number, o1: number];

/** Split the block's output between `threads` threads: by images, or by rows of a single image. */
function segments(g: DwGeometry, threads: number): Segment[][] {
  if (threads === 1) return [Array.from({ length: g.n }, (_, n): Segment => [n, 0, g.ho])];
  if (g.n === 1) {
    const half = Math.ceil(g.ho / 2);
    return [[[0, 0, half]], half < g.ho ? [[0, half, g.ho]] : []];
  }
  const half = Math.ceil(g.n / 2);
  return [0, 1].map((t) => Array.from({ length: t ? g.n - half : half }, (_, i): Segment => [t * half + i, 0, g.ho]));
}

function kernelFunc(args: { inputs: Inputs; backend: tf.KernelBackend; attrs: InvertedResidualAttrs }): TensorInfo {
  const { inputs: t, backend, attrs: a } = args;
  const g = plan(t.x.shape, { ef: t.ef?.shape, df: t.df.shape, pf: t.pf.shape }, a);
  const mm = gemmFor(backend);
  const dw = g && depthwiseRowsKernel(backend, g);
  const memory = backendMemory(backend);
  if (!g || !mm || !dw || !memory) throw new Error('internal: the inverted-residual kernel was called for a block it does not handle');
  const io = new BackendIO(backend, 'wasm');
  const helper = helperThread(backend);
  const shares = segments(g, helper ? 2 : 1).filter((s) => s.length);
  const [cin, ce, co] = [t.x.shape[3], g.c, t.pf.shape[3]];
  const y = io.alloc([g.n, g.ho, g.wo, co]);
  // Output rows per band: the band's input rows (expanded) plus its depthwise output fit BAND_BYTES.
  const inRowBytes = g.w * ce * 4;
  const outRowBytes = g.wo * ce * 4;
  const band = Math.max(1, Math.min(g.ho, Math.floor((BAND_BYTES - (g.kh - g.sh) * inRowBytes) / (g.sh * inRowBytes + outRowBytes))));
  const inRows = Math.min(g.h, (band - 1) * g.sh + g.kh);
  // Each thread's buffers: expanded rows, depthwise output, GEMM packing.
  const buffers = shares.map(() => ({ e: a.expand ? io.alloc([inRows * g.w * ce]) : null, d: io.alloc([band * g.wo * ce]), pack: io.alloc([GEMM_SCRATCH_FLOATS]) }));
  // Heap offsets from here on: nothing below allocates.
  const at = (x: TensorInfo) => heapOffset(backend, x);
  const [xAt, yAt, dfAt, dbAt] = [at(t.x), at(y), at(t.df), at(t.db)];
  const clampOf = (c: Clamp) => (c ? { lo: c[0], hi: c[1] } : {});
  const [dlo, dhi] = a.dwClamp ?? [-Infinity, Infinity];
  // Input rows [r0, r1) of the depthwise conv needed for output rows [o0, o1).
  const needed = (o0: number, o1: number) => [Math.max(0, o0 * g.sh - g.pt), Math.min(g.h, (o1 - 1) * g.sh - g.pt + g.kh)];

  /** Run (or, with `list`, record for the helper) one thread's segments. */
  const share = (segs: Segment[], buf: (typeof buffers)[number], list?: number[]) => {
    const copy = (dst: number, src: number, floats: number) => {
      if (list) list.push(LIST_COPY, dst / 4, src / 4, floats);
      else new Float32Array(memory.buffer).copyWithin(dst / 4, src / 4, src / 4 + floats);
    };
    const [eAt, dAt, packAt] = [buf.e ? at(buf.e) : 0, at(buf.d), at(buf.pack)];
    for (const [n, oStart, oEnd] of segs) {
      // Expanded rows [h0, h1) are in e, row r at eAt + (r - h0) * inRowBytes.
      let [h0, h1] = [0, 0];
      for (let o0 = oStart; o0 < oEnd; o0 += band) {
        const o1 = Math.min(oEnd, o0 + band);
        const [r0, r1] = needed(o0, o1);
        let dwIn = xAt + n * g.h * inRowBytes;
        if (buf.e) {
          if (r0 < h1 && r0 >= h0) {
            // Carry the window's overlap to the top of the buffer.
            copy(eAt, eAt + (r0 - h0) * inRowBytes, ((h1 - r0) * inRowBytes) / 4);
            h0 = r0;
          } else [h0, h1] = [r0, r0];
          if (r1 > h1) {
            gemmOnThread(io, mm, { a: t.x, aOffset: (n * g.h + h1) * g.w * cin, aRowStride: cin, aColStride: 1, b: t.ef!, ldb: ce, c: buf.e, cOffset: (h1 - h0) * g.w * ce, ldc: ce, m: (r1 - h1) * g.w, n: ce, k: cin, bias: t.eb, ...clampOf(a.expandClamp) }, packAt, list);
            h1 = r1;
          }
          dwIn = eAt - h0 * inRowBytes;
        }
        if (list) dw.record(helper!, list, dwIn, dfAt, dbAt, dAt - o0 * outRowBytes, o0, o1, dlo, dhi);
        else dw.run(dwIn, dfAt, dbAt, dAt - o0 * outRowBytes, o0, o1, dlo, dhi);
        const yOffset = (n * g.ho + o0) * g.wo * co;
        if (a.residual) copy(yAt + yOffset * 4, xAt + yOffset * 4, (o1 - o0) * g.wo * co);
        gemmOnThread(io, mm, { a: buf.d, aRowStride: ce, aColStride: 1, b: t.pf, ldb: co, c: y, cOffset: yOffset, ldc: co, m: (o1 - o0) * g.wo, n: co, k: ce, bias: t.pb, accumulate: a.residual, ...clampOf(a.projectClamp) }, packAt, list);
      }
    }
  };

  try {
    if (shares.length === 2) {
      const list: number[] = [];
      share(shares[1], buffers[1], list);
      helper!.alongside(list, () => share(shares[0], buffers[0]));
    } else {
      share(shares[0], buffers[0]);
    }
  } finally {
    for (const b of buffers) [b.e, b.d, b.pack].forEach((x) => x && io.dispose(x));
  }
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
