/**
 * Depthwise filter gradient on wasm with the SIMD multiply-accumulate (simd.ts): for each
 * image row and filter tap, one call runs along the output row (any stride) over all
 * channels, 4 at a time, into a float32 tap accumulator that is flushed into float64 totals
 * every few rows so long sums stay accurate. Multiplier 1, channels divisible by 4.
 */
import type * as tf from '@tensorflow/tfjs';
import type { BackendIO, TensorInfo } from './backend-io';
import type { ConvInfo } from './loops';
import { heapOffset, type SimdKernels } from './simd';

/** Terms summed in float32 per accumulator before a flush. */
const TERMS_PER_FLUSH = 256;

/**
 * Every (image, output row, filter tap) whose input row lies inside the image, with the
 * output columns [wo0, wo1) whose input column does too: `xAt`/`yAt` are the float offsets
 * of the first input and output pixel of that run (input column = wo * sw + shift).
 */
function forEachTapRun(info: ConvInfo, visit: (tap: number, xAt: number, yAt: number, count: number) => void, afterRow?: () => void): void {
  const { batchSize: N, inHeight: H, inWidth: W, outHeight: Ho, outWidth: Wo, filterHeight: KH, filterWidth: KW } = info;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  for (let n = 0; n < N; n++) {
    for (let ho = 0; ho < Ho; ho++) {
      for (let i = 0; i < KH; i++) {
        const hi = ho * sh - info.padInfo.top + i * dh;
        if (hi < 0 || hi >= H) continue;
        for (let j = 0; j < KW; j++) {
          const shift = j * dw - info.padInfo.left;
          const wo0 = Math.max(0, Math.ceil(-shift / sw));
          const wo1 = Math.min(Wo, Math.floor((W - 1 - shift) / sw) + 1);
          if (wo1 > wo0) visit(i * KW + j, (n * H + hi) * W + wo0 * sw + shift, (n * Ho + ho) * Wo + wo0, wo1 - wo0);
        }
      }
      afterRow?.();
    }
  }
}

export function depthwiseFilterGradSimd(b: BackendIO, backend: tf.KernelBackend, simd: SimdKernels, x: TensorInfo, dy: TensorInfo, info: ConvInfo, out: TensorInfo): void {
  const { inChannels: C, outWidth: Wo, filterHeight: KH, filterWidth: KW, strideWidth: sw } = info;
  const taps = KH * KW * C;
  const tmp = b.alloc([taps], true);
  const totals = new Float64Array(taps);
  const xBase = heapOffset(backend, x);
  const yBase = heapOffset(backend, dy);
  const tBase = heapOffset(backend, tmp);
  const flush = () => {
    const v = b.view(tmp);
    for (let k = 0; k < taps; k++) totals[k] += v[k];
    v.fill(0);
  };
  const rowsPerFlush = Math.max(1, Math.floor(TERMS_PER_FLUSH / Wo));
  let rows = 0;
  forEachTapRun(
    info,
    (tap, xAt, yAt, count) => simd.fmaStrided(tBase + tap * C * 4, xBase + xAt * C * 4, yBase + yAt * C * 4, C / 4, count, 0, sw * C * 4, C * 4),
    () => {
      if (++rows % rowsPerFlush === 0) flush();
    },
  );
  flush();
  b.view(out).set(totals);
  b.dispose(tmp);
}

/** Depthwise input gradient (multiplier 1, any stride): dx[.., c] += dy[.., c] * w[tap, c], SIMD over c. */
export function depthwiseInputGradSimd(b: BackendIO, backend: tf.KernelBackend, simd: SimdKernels, dy: TensorInfo, filter: TensorInfo, info: ConvInfo): TensorInfo {
  const { inChannels: C, strideWidth: sw } = info;
  const dx = b.alloc([...info.inShape], true);
  const [dxAt, dyAt, wAt] = [heapOffset(backend, dx), heapOffset(backend, dy), heapOffset(backend, filter)];
  forEachTapRun(info, (tap, xAt, yAt, count) => simd.fmaStrided(dxAt + xAt * C * 4, dyAt + yAt * C * 4, wAt + tap * C * 4, C / 4, count, sw * C * 4, C * 4, 0));
  return dx;
}
