/**
 * Convolution gradient kernels. 1x1 stride-1 convs are plain matmuls; other convs go
 * through im2col / col2im in batch chunks (bounded memory); depthwise gradients are
 * blocked NHWC loops, on wasm register-blocked SIMD kernels (depthwise-direct.ts: the
 * filter gradient, and the input gradient of stride-1 convs). On wasm the matmuls are our
 * SIMD GEMM (gemm-simd.ts), which reads a transposed operand in place, or, when a ReLU6
 * mask zeroed most of dy, sums over its non-zeros only (sparse-grad.ts); elsewhere (cpu, or
 * widths not in fours) the backend's plain matmul, with operands transposed explicitly
 * (its transposed variants are 10-40x slower).
 */
import * as tf from '@tensorflow/tfjs';
import { BackendIO, type TensorInfo } from './backend-io';
import { gemm, gemmFor, type Gemm } from './gemm-simd';
import { depthwiseFilterGradDirect, depthwiseInputGradDirect, dwGeometry } from './depthwise-direct';
import { depthwiseFilterGradSimd, depthwiseInputGradSimd } from './depthwise-simd';
import { simdFor } from './simd';
import { sparseFilterGradT, sparseInputGrad } from './sparse-grad';
import { col2imAdd, depthwiseFilterGrad, depthwiseInputGrad, im2colRows, im2colT, type ConvInfo } from './loops';

/** Max floats in one im2col buffer (32 MB). */
const CHUNK_FLOATS = 8 * 1024 * 1024;

type Pad = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;

interface ConvAttrs {
  strides: [number, number] | number;
  pad: Pad;
  dataFormat?: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dilations?: [number, number] | number;
}

function convInfo(xShape: number[], filterShape: number[], a: ConvAttrs, depthwise: boolean, kernel: string): ConvInfo {
  if (a.dataFormat === 'NCHW') throw new Error(`${kernel}: only NHWC is supported by the training kernels`);
  return tf.backend_util.computeConv2DInfo(xShape as [number, number, number, number], filterShape as [number, number, number, number], a.strides, a.dilations ?? 1, a.pad as 'same', a.dimRoundingMode, depthwise);
}

/** A 1x1, stride-1, unpadded conv is a matmul over all pixels. */
function isPointwise(info: ConvInfo): boolean {
  const p = info.padInfo;
  return info.filterHeight === 1 && info.filterWidth === 1 && info.strideHeight === 1 && info.strideWidth === 1 && p.top === 0 && p.left === 0 && p.bottom === 0 && p.right === 0;
}

function io(backend: tf.KernelBackend): BackendIO {
  return new BackendIO(backend, 'typedArrayFromHeap' in backend ? 'wasm' : 'cpu');
}

/** Rows [n0, n1) of an NHWC tensor as a new [rows, C] tensor (the whole tensor when it fits). */
function batchRows(b: BackendIO, t: TensorInfo, n0: number, n1: number, rowsPerImage: number, c: number): { info: TensorInfo; owned: boolean } {
  const n = t.shape[0];
  if (n0 === 0 && n1 === n) return { info: b.reshaped(t, [n * rowsPerImage, c]), owned: false };
  const out = b.alloc([(n1 - n0) * rowsPerImage, c]);
  const size = rowsPerImage * c;
  b.view(out).set(b.view(t).subarray(n0 * size, n1 * size));
  return { info: out, owned: true };
}

function chunkImages(info: ConvInfo, k: number): number {
  return Math.max(1, Math.min(info.batchSize, Math.floor(CHUNK_FLOATS / Math.max(1, info.outHeight * info.outWidth * k))));
}

/** dW for Conv2D: [kh, kw, cin, cout]. */
export function conv2DBackpropFilter(args: { inputs: { x: TensorInfo; dy: TensorInfo }; backend: tf.KernelBackend; attrs: ConvAttrs & { filterShape: number[] } }): TensorInfo {
  const { x, dy } = args.inputs;
  const info = convInfo(x.shape, args.attrs.filterShape, args.attrs, false, 'Conv2DBackpropFilter');
  const b = io(args.backend);
  const { inChannels: cin, outChannels: cout } = info;
  const filterShape = [info.filterHeight, info.filterWidth, cin, cout];
  const g = b.kind === 'wasm' ? gemmFor(args.backend) : null;
  if (isPointwise(info)) {
    const m = info.batchSize * info.inHeight * info.inWidth;
    const sparse = g ? sparseFilterGradT(b, x, dy, m, cout, cin) : null;
    if (sparse) {
      const dw = b.transpose2d(sparse, cout, cin);
      b.dispose(sparse);
      return b.reshaped(dw, filterShape);
    }
    if (g) {
      // dW = X^T dY with X read in place; or dW^T = dY^T X (then a small transpose) when only cin is a multiple of 4.
      if (cout % 4 === 0) {
        const dw = b.alloc(filterShape);
        gemm(b, g, { a: x, aRowStride: 1, aColStride: cin, b: dy, ldb: cout, c: dw, ldc: cout, m: cin, n: cout, k: m });
        return dw;
      }
      if (cin % 4 === 0) {
        const dwt = b.alloc([cout, cin]);
        gemm(b, g, { a: dy, aRowStride: 1, aColStride: cout, b: x, ldb: cin, c: dwt, ldc: cin, m: cout, n: cin, k: m });
        const dw = b.transpose2d(dwt, cout, cin);
        b.dispose(dwt);
        return b.reshaped(dw, filterShape);
      }
    }
    if (cin <= cout) {
      const xt = b.transpose2d(x, m, cin);
      const dw = b.matmul(xt, dy, cin, m, cout);
      b.dispose(xt);
      return b.reshaped(dw, filterShape);
    }
    const dyt = b.transpose2d(dy, m, cout);
    const dwt = b.matmul(dyt, x, cout, m, cin);
    b.dispose(dyt);
    const dw = b.transpose2d(dwt, cout, cin);
    b.dispose(dwt);
    return b.reshaped(dw, filterShape);
  }
  if (g && cout % 4 === 0) return convFilterGradGemm(b, g, x, dy, info, filterShape);
  const k = info.filterHeight * info.filterWidth * cin;
  const per = chunkImages(info, k);
  const rows = info.outHeight * info.outWidth;
  let total: TensorInfo | null = null;
  for (let n0 = 0; n0 < info.batchSize; n0 += per) {
    const n1 = Math.min(info.batchSize, n0 + per);
    const mc = (n1 - n0) * rows;
    const colT = b.alloc([k, mc]);
    im2colT(b.view(x), info, n0, n1, b.view(colT));
    const dyc = batchRows(b, dy, n0, n1, rows, cout);
    const part = b.matmul(colT, dyc.info, k, mc, cout);
    b.dispose(colT);
    if (dyc.owned) b.dispose(dyc.info);
    if (!total) total = part;
    else {
      const acc = b.view(total);
      const p = b.view(part);
      for (let i = 0; i < acc.length; i++) acc[i] += p[i];
      b.dispose(part);
    }
  }
  return b.reshaped(total!, filterShape);
}

/** dx for Conv2D: [n, h, w, cin]. */
export function conv2DBackpropInput(args: { inputs: { dy: TensorInfo; filter: TensorInfo }; backend: tf.KernelBackend; attrs: ConvAttrs & { inputShape: number[] } }): TensorInfo {
  const { dy, filter } = args.inputs;
  const info = convInfo(args.attrs.inputShape, filter.shape, args.attrs, false, 'Conv2DBackpropInput');
  const b = io(args.backend);
  const { inChannels: cin, outChannels: cout } = info;
  const k = info.filterHeight * info.filterWidth * cin;
  const wt = b.transpose2d(filter, k, cout); // [cout, k]
  if (isPointwise(info)) {
    const m = info.batchSize * info.inHeight * info.inWidth;
    const g = b.kind === 'wasm' && cin % 4 === 0 ? gemmFor(args.backend) : null;
    const sparse = g ? sparseInputGrad(b, dy, wt, m, cout, cin) : null;
    if (sparse) {
      b.dispose(wt);
      return b.reshaped(sparse, [...info.inShape]);
    }
    if (g) {
      const dx = b.alloc([...info.inShape]);
      gemm(b, g, { a: dy, aRowStride: cout, aColStride: 1, b: wt, ldb: cin, c: dx, ldc: cin, m, n: cin, k: cout });
      b.dispose(wt);
      return dx;
    }
    const dx = b.matmul(dy, wt, m, cout, cin);
    b.dispose(wt);
    return b.reshaped(dx, [...info.inShape]);
  }
  const fast = inputGradViaForward(b, dy, filter, info, false);
  if (fast) {
    b.dispose(wt);
    return fast;
  }
  const dx = b.alloc([...info.inShape], true);
  const per = chunkImages(info, k);
  const rows = info.outHeight * info.outWidth;
  for (let n0 = 0; n0 < info.batchSize; n0 += per) {
    const n1 = Math.min(info.batchSize, n0 + per);
    const dyc = batchRows(b, dy, n0, n1, rows, cout);
    const cols = b.matmul(dyc.info, wt, (n1 - n0) * rows, cout, k);
    if (dyc.owned) b.dispose(dyc.info);
    col2imAdd(b.view(cols), info, n0, n1, b.view(dx));
    b.dispose(cols);
  }
  b.dispose(wt);
  return dx;
}

/** dW of a general conv: row-major im2col chunks (bounded memory) times dY, accumulated in place. */
function convFilterGradGemm(b: BackendIO, g: Gemm, x: TensorInfo, dy: TensorInfo, info: ConvInfo, filterShape: number[]): TensorInfo {
  const k = info.filterHeight * info.filterWidth * info.inChannels;
  const cout = info.outChannels;
  const rows = info.outHeight * info.outWidth;
  const per = chunkImages(info, k);
  const dw = b.alloc(filterShape);
  const col = b.alloc([Math.min(per, info.batchSize) * rows * k]);
  for (let n0 = 0; n0 < info.batchSize; n0 += per) {
    const n1 = Math.min(info.batchSize, n0 + per);
    im2colRows(b.view(x), info, n0, n1, b.view(col));
    gemm(b, g, { a: col, aRowStride: 1, aColStride: k, b: dy, bOffset: n0 * rows * cout, ldb: cout, c: dw, ldc: cout, m: k, n: cout, k: (n1 - n0) * rows, accumulate: n0 > 0 });
  }
  b.dispose(col);
  return dw;
}

/** dW for DepthwiseConv2dNative: [kh, kw, c, multiplier]. */
export function depthwiseBackpropFilter(args: { inputs: { x: TensorInfo; dy: TensorInfo }; backend: tf.KernelBackend; attrs: ConvAttrs & { filterShape: number[] } }): TensorInfo {
  const { x, dy } = args.inputs;
  const info = convInfo(x.shape, args.attrs.filterShape, args.attrs, true, 'DepthwiseConv2dNativeBackpropFilter');
  const b = io(args.backend);
  const geometry = b.kind === 'wasm' ? dwGeometry(info) : null;
  const direct = geometry && depthwiseFilterGradDirect(b, geometry, x, dy);
  if (direct) return direct;
  const out = b.alloc([...args.attrs.filterShape]);
  const simd = b.kind === 'wasm' && info.outChannels === info.inChannels && info.inChannels % 4 === 0 ? simdFor(args.backend) : null;
  if (simd) depthwiseFilterGradSimd(b, args.backend, simd, x, dy, info, out);
  else depthwiseFilterGrad(b.view(x), b.view(dy), info, b.view(out));
  return out;
}

/** dx for DepthwiseConv2dNative: [n, h, w, c]. */
export function depthwiseBackpropInput(args: { inputs: { dy: TensorInfo; filter: TensorInfo }; backend: tf.KernelBackend; attrs: ConvAttrs & { inputShape: number[] } }): TensorInfo {
  const { dy, filter } = args.inputs;
  const info = convInfo(args.attrs.inputShape, filter.shape, args.attrs, true, 'DepthwiseConv2dNativeBackpropInput');
  const b = io(args.backend);
  const strided = info.strideHeight > 1 || info.strideWidth > 1;
  const geometry = !strided && b.kind === 'wasm' ? dwGeometry(info) : null;
  const direct = geometry && depthwiseInputGradDirect(b, geometry, dy, filter);
  if (direct) return direct;
  const simd = strided && b.kind === 'wasm' && info.outChannels === info.inChannels && info.inChannels % 4 === 0 ? simdFor(args.backend) : null;
  // Strided: a direct SIMD scatter beats a 4x larger zero-inserted conv.
  if (simd) return depthwiseInputGradSimd(b, args.backend, simd, dy, filter, info);
  const fast = inputGradViaForward(b, dy, filter, info, true);
  if (fast) return fast;
  const out = b.alloc([...info.inShape]);
  depthwiseInputGrad(b.view(dy), b.view(filter), info, b.view(out));
  return out;
}

/**
 * The input gradient of a conv is a stride-1 conv of dy (zero-inserted between rows and
 * columns when the conv was strided) with the spatially flipped filter, so it can run on
 * the backend's fast forward kernel (XNNPACK on wasm). Per axis, with dy dilated to
 * length L = (out - 1) * stride + 1: pad before = (k - 1) * dilation - padBefore and
 * pad after = in - L + padBefore. Returns null when a pad would be negative.
 */
function inputGradViaForward(b: BackendIO, dy: TensorInfo, filter: TensorInfo, info: ConvInfo, depthwise: boolean): TensorInfo | null {
  const { batchSize: n, inHeight: h, inWidth: w, outHeight: ho, outWidth: wo, filterHeight: kh, filterWidth: kw } = info;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const lh = (ho - 1) * sh + 1;
  const lw = (wo - 1) * sw + 1;
  const pads = [(kh - 1) * dh - info.padInfo.top, h - lh + info.padInfo.top, (kw - 1) * dw - info.padInfo.left, w - lw + info.padInfo.left];
  if (pads.some((p) => p < 0)) return null;
  if (depthwise && info.outChannels !== info.inChannels) return null; // multiplier > 1: the loop handles it
  const cin = info.inChannels;
  const cout = info.outChannels;
  // Flip spatially; a regular conv's filter also swaps in/out channels: [kh, kw, cout, cin].
  const flippedShape = depthwise ? [kh, kw, cin, 1] : [kh, kw, cout, cin];
  const flipped = b.alloc(flippedShape);
  {
    const src = b.view(filter);
    const dst = b.view(flipped);
    const taps = depthwise ? cin : cin * cout;
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const s0 = (i * kw + j) * taps;
        const d0 = ((kh - 1 - i) * kw + (kw - 1 - j)) * taps;
        if (depthwise) dst.set(src.subarray(s0, s0 + taps), d0);
        else for (let ci = 0; ci < cin; ci++) for (let co = 0; co < cout; co++) dst[d0 + co * cin + ci] = src[s0 + ci * cout + co];
      }
    }
  }
  let src = dy;
  if (sh > 1 || sw > 1) {
    src = b.alloc([n, lh, lw, cout], true);
    const from = b.view(dy);
    const to = b.view(src);
    for (let bi = 0; bi < n; bi++) {
      for (let y = 0; y < ho; y++) {
        for (let x = 0; x < wo; x++) {
          const s0 = ((bi * ho + y) * wo + x) * cout;
          to.set(from.subarray(s0, s0 + cout), ((bi * lh + y * sh) * lw + x * sw) * cout);
        }
      }
    }
  }
  const attrs = { strides: [1, 1], pad: [[0, 0], [pads[0], pads[1]], [pads[2], pads[3]], [0, 0]], dilations: [dh, dw], dataFormat: 'NHWC' };
  const out = b.run(depthwise ? 'DepthwiseConv2dNative' : 'Conv2D', { x: src, filter: flipped }, attrs);
  b.dispose(flipped);
  if (src !== dy) b.dispose(src);
  return out;
}
