/**
 * Cache-friendly NHWC loops on plain Float32Arrays: channels innermost, so every inner
 * loop walks contiguous memory, and no per-element index arithmetic beyond one offset
 * per pixel and tap. Shared by the wasm and cpu kernels (see conv-grads.ts).
 */
import type * as tf from '@tensorflow/tfjs';

export type ConvInfo = tf.backend_util.Conv2DInfo;

/**
 * Depthwise filter gradient: dW[i, j, c, m] = sum over n, ho, wo of
 * x[n, ho*sh - pt + i*dh, wo*sw - pl + j*dw, c] * dy[n, ho, wo, c*M + m].
 * Accumulates in float64 (sums run over every pixel of the batch).
 */
export function depthwiseFilterGrad(x: Float32Array, dy: Float32Array, info: ConvInfo, out: Float32Array): void {
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: C, outHeight: Ho, outWidth: Wo, filterHeight: KH, filterWidth: KW } = info;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const pt = info.padInfo.top;
  const pl = info.padInfo.left;
  const M = info.outChannels / C;
  const CM = C * M;
  if (M === 1 && sw === 1) return depthwiseFilterGradRows(x, dy, info, out);
  const acc = new Float64Array(KH * KW * CM);
  for (let n = 0; n < N; n++) {
    for (let ho = 0; ho < Ho; ho++) {
      for (let i = 0; i < KH; i++) {
        const hi = ho * sh - pt + i * dh;
        if (hi < 0 || hi >= H) continue;
        const xRow = (n * H + hi) * W;
        const yRow = ((n * Ho + ho) * Wo) * CM;
        for (let j = 0; j < KW; j++) {
          const a0 = (i * KW + j) * CM;
          for (let wo = 0; wo < Wo; wo++) {
            const wi = wo * sw - pl + j * dw;
            if (wi < 0 || wi >= W) continue;
            const x0 = (xRow + wi) * C;
            const y0 = yRow + wo * CM;
            if (M === 1) {
              for (let c = 0; c < C; c++) acc[a0 + c] += x[x0 + c] * dy[y0 + c];
            } else {
              for (let c = 0; c < C; c++) {
                const xv = x[x0 + c];
                for (let m = 0; m < M; m++) acc[a0 + c * M + m] += xv * dy[y0 + c * M + m];
              }
            }
          }
        }
      }
    }
  }
  for (let k = 0; k < acc.length; k++) out[k] = acc[k];
}

/**
 * Stride 1 along width, multiplier 1: for a tap (i, j) and an output row, the x and dy
 * elements involved are two contiguous runs of up to Wo*C floats, so the inner loop is a
 * plain multiply-add over them into a per-tap row accumulator, reduced over wo at the end.
 */
function depthwiseFilterGradRows(x: Float32Array, dy: Float32Array, info: ConvInfo, out: Float32Array): void {
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: C, outHeight: Ho, outWidth: Wo, filterHeight: KH, filterWidth: KW } = info;
  const { strideHeight: sh, dilationHeight: dh, dilationWidth: dw } = info;
  const pt = info.padInfo.top;
  const pl = info.padInfo.left;
  const row = Wo * C;
  const tmp = new Float64Array(KH * KW * row);
  for (let n = 0; n < N; n++) {
    for (let ho = 0; ho < Ho; ho++) {
      const y0 = (n * Ho + ho) * row;
      for (let i = 0; i < KH; i++) {
        const hi = ho * sh - pt + i * dh;
        if (hi < 0 || hi >= H) continue;
        for (let j = 0; j < KW; j++) {
          const shift = j * dw - pl; // wi = wo + shift
          const lo = Math.max(0, -shift) * C;
          const hiK = Math.min(Wo, W - shift) * C;
          const t0 = (i * KW + j) * row;
          const x0 = ((n * H + hi) * W + shift) * C;
          for (let k = lo; k < hiK; k++) tmp[t0 + k] += x[x0 + k] * dy[y0 + k];
        }
      }
    }
  }
  for (let tap = 0; tap < KH * KW; tap++) {
    for (let c = 0; c < C; c++) {
      let s = 0;
      for (let wo = 0; wo < Wo; wo++) s += tmp[tap * row + wo * C + c];
      out[tap * C + c] = s;
    }
  }
}

/** Depthwise input gradient: scatter dy through the filter taps into dx (zeroed here). */
export function depthwiseInputGrad(dy: Float32Array, filter: Float32Array, info: ConvInfo, dx: Float32Array): void {
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: C, outHeight: Ho, outWidth: Wo, filterHeight: KH, filterWidth: KW } = info;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const pt = info.padInfo.top;
  const pl = info.padInfo.left;
  const M = info.outChannels / C;
  const CM = C * M;
  dx.fill(0);
  for (let n = 0; n < N; n++) {
    for (let ho = 0; ho < Ho; ho++) {
      for (let i = 0; i < KH; i++) {
        const hi = ho * sh - pt + i * dh;
        if (hi < 0 || hi >= H) continue;
        const xRow = (n * H + hi) * W;
        const yRow = ((n * Ho + ho) * Wo) * CM;
        for (let j = 0; j < KW; j++) {
          const f0 = (i * KW + j) * CM;
          for (let wo = 0; wo < Wo; wo++) {
            const wi = wo * sw - pl + j * dw;
            if (wi < 0 || wi >= W) continue;
            const x0 = (xRow + wi) * C;
            const y0 = yRow + wo * CM;
            if (M === 1) {
              for (let c = 0; c < C; c++) dx[x0 + c] += dy[y0 + c] * filter[f0 + c];
            } else {
              for (let c = 0; c < C; c++) {
                let s = 0;
                for (let m = 0; m < M; m++) s += dy[y0 + c * M + m] * filter[f0 + c * M + m];
                dx[x0 + c] += s;
              }
            }
          }
        }
      }
    }
  }
}

/**
 * im2col, transposed: colT[(i*KW + j)*C + c][m] for the batch rows [n0, n1), where
 * m = ((n - n0)*Ho + ho)*Wo + wo. Out-of-image taps are 0. colT then multiplies dy
 * ([m, Cout]) with the backend's fast non-transposed matmul.
 */
export function im2colT(x: Float32Array, info: ConvInfo, n0: number, n1: number, colT: Float32Array): void {
  const { inHeight: H, inWidth: W, inChannels: C, outHeight: Ho, outWidth: Wo, filterHeight: KH, filterWidth: KW } = info;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const pt = info.padInfo.top;
  const pl = info.padInfo.left;
  const Mc = (n1 - n0) * Ho * Wo;
  for (let n = n0; n < n1; n++) {
    for (let ho = 0; ho < Ho; ho++) {
      for (let wo = 0; wo < Wo; wo++) {
        const m = ((n - n0) * Ho + ho) * Wo + wo;
        for (let i = 0; i < KH; i++) {
          const hi = ho * sh - pt + i * dh;
          for (let j = 0; j < KW; j++) {
            const wi = wo * sw - pl + j * dw;
            const r0 = (i * KW + j) * C;
            if (hi < 0 || hi >= H || wi < 0 || wi >= W) {
              for (let c = 0; c < C; c++) colT[(r0 + c) * Mc + m] = 0;
            } else {
              const x0 = ((n * H + hi) * W + wi) * C;
              for (let c = 0; c < C; c++) colT[(r0 + c) * Mc + m] = x[x0 + c];
            }
          }
        }
      }
    }
  }
}

/** im2col, row-major: col[m][(i*KW + j)*C + c] for batch rows [n0, n1); out-of-image taps are 0. */
export function im2colRows(x: Float32Array, info: ConvInfo, n0: number, n1: number, col: Float32Array): void {
  const { inHeight: H, inWidth: W, inChannels: C, outHeight: Ho, outWidth: Wo, filterHeight: KH, filterWidth: KW } = info;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const pt = info.padInfo.top;
  const pl = info.padInfo.left;
  const K = KH * KW * C;
  for (let n = n0; n < n1; n++) {
    for (let ho = 0; ho < Ho; ho++) {
      for (let wo = 0; wo < Wo; wo++) {
        let o = (((n - n0) * Ho + ho) * Wo + wo) * K;
        for (let i = 0; i < KH; i++) {
          const hi = ho * sh - pt + i * dh;
          for (let j = 0; j < KW; j++) {
            const wi = wo * sw - pl + j * dw;
            if (hi < 0 || hi >= H || wi < 0 || wi >= W) {
              for (let c = 0; c < C; c++) col[o++] = 0;
            } else {
              const x0 = ((n * H + hi) * W + wi) * C;
              for (let c = 0; c < C; c++) col[o++] = x[x0 + c];
            }
          }
        }
      }
    }
  }
}

/** col2im: add cols[m][(i*KW + j)*C + c] back into dx for batch rows [n0, n1). */
export function col2imAdd(cols: Float32Array, info: ConvInfo, n0: number, n1: number, dx: Float32Array): void {
  const { inHeight: H, inWidth: W, inChannels: C, outHeight: Ho, outWidth: Wo, filterHeight: KH, filterWidth: KW } = info;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const pt = info.padInfo.top;
  const pl = info.padInfo.left;
  const K = KH * KW * C;
  for (let n = n0; n < n1; n++) {
    for (let ho = 0; ho < Ho; ho++) {
      for (let wo = 0; wo < Wo; wo++) {
        const m0 = (((n - n0) * Ho + ho) * Wo + wo) * K;
        for (let i = 0; i < KH; i++) {
          const hi = ho * sh - pt + i * dh;
          if (hi < 0 || hi >= H) continue;
          for (let j = 0; j < KW; j++) {
            const wi = wo * sw - pl + j * dw;
            if (wi < 0 || wi >= W) continue;
            const x0 = ((n * H + hi) * W + wi) * C;
            const c0 = m0 + (i * KW + j) * C;
            for (let c = 0; c < C; c++) dx[x0 + c] += cols[c0 + c];
          }
        }
      }
    }
  }
}
