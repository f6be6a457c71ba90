/**
 * Direct depthwise convolution on wasm, register-blocked: the forward pass (bias and a fused
 * clamp), the filter gradient, and the stride-1 input gradient (the forward pass of dy with
 * the spatially flipped filter). The gradients before ran a strided multiply-accumulate
 * through memory for every tap; here each call holds one channel vector's taps (or tap sums)
 * in registers and streams the pixels of a run. On MobileNetV2's last blocks (16 x 7x7x336,
 * one thread) the two gradients went from ~1 ms each to ~0.6, the forward from XNNPACK's
 * 0.7-0.8 ms to 0.45. Large frozen layers stay on XNNPACK: there the pass is memory-bound and
 * it was no slower, and it uses every thread.
 *
 * A module is generated per layer geometry (channels, input and output sizes, strides,
 * pads, a kernel of at most 3x3 taps) so every tap's byte offset is an instruction constant.
 * Zero padding is not materialised: the output pixels are grouped into runs of rows and
 * columns whose windows have the same in-bounds taps, and each run gets its own function
 * that loads only those taps. Channels in fours, depth multiplier 1, dilation 1.
 */
import type * as tf from '@tensorflow/tfjs';
import type { BackendIO, TensorInfo } from './backend-io';
import { LIST_CALL, helperThread, relaxedSimd, type GemmHelper } from './gemm-simd';
import type { ConvInfo } from './loops';
import { backendMemory, heapOffset } from './simd';
import { F32, I32, V128, bump, code, countdown, fadd, fmadd, fmul, fnType, fpmax, fpmin, get, i32, moduleBytes, set, simd, splat, vload, vloadAt, vstore, vstoreAt, vzero } from './wasm-asm';

/** Kernels up to this many taps keep them all in registers (3x3: 9 + bias, clamp, accumulator). */
const MAX_TAPS = 9;
/** Terms summed per float32 tap accumulator before they are flushed into float64 totals. */
const TERMS_PER_FLUSH = 256;

/** The conv as seen by the kernels: input [n, h, w, c] -> output [n, ho, wo, c]. */
export interface DwGeometry {
  n: number;
  h: number;
  w: number;
  c: number;
  ho: number;
  wo: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  /** Rows / columns of zero padding before the input. */
  pt: number;
  pl: number;
}

/** Consecutive outputs [o0, o1) along one axis whose windows keep taps [t0, t1) in bounds. */
interface Run {
  o0: number;
  o1: number;
  t0: number;
  t1: number;
}

function runsOf(outLen: number, inLen: number, k: number, s: number, pad: number): Run[] {
  const runs: Run[] = [];
  for (let o = 0; o < outLen; o++) {
    const t0 = Math.max(0, pad - o * s);
    const t1 = Math.max(t0, Math.min(k, inLen + pad - o * s));
    const last = runs[runs.length - 1];
    if (last && last.t0 === t0 && last.t1 === t1) last.o1 = o + 1;
    else runs.push({ o0: o, o1: o + 1, t0, t1 });
  }
  return runs;
}

type FwdFn = (x: number, w: number, bias: number, out: number, rows: number, count: number, c4: number, lo: number, hi: number) => void;
type GradFn = (x: number, dy: number, acc: number, rows: number, count: number, c4: number) => void;

interface DwModule {
  rows: Run[];
  cols: Run[];
  /** The functions for row run i and column run j: fwd[i][j], grad[i][j]. */
  fwd: FwdFn[][];
  grad: GradFn[][];
  flush: (tmp: number, totals: number, n4: number) => void;
  /** The compiled module and fwd's and grad's export names, for a helper thread's own instance. */
  module: WebAssembly.Module;
  fwdNames: string[][];
  gradNames: string[][];
}

/** Runs with the same in-bounds taps share one function. */
const variantKey = (r: Run, c: Run) => `${r.t0}_${r.t1}_${c.t0}_${c.t1}`;

/** acc = a * b + acc (one FMA with relaxed SIMD), with a, b already on the stack. */
const macInto = (acc: number, relaxed: boolean) => (relaxed ? [...get(acc), ...fmadd, ...set(acc)] : [...fmul, ...get(acc), ...fadd, ...set(acc)]);

/**
 * fwd(x, w, bias, out, rows, count, c4, lo, hi): for each of c4 channel vectors, over `rows`
 * output rows of `count` pixels: out = clamp(bias + sum over the variant's taps of x * w, lo, hi).
 * x points at tap (0, 0) of the first pixel's window (which may lie in the padding: only
 * in-bounds taps are read); w is [kh, kw, c], bias [c].
 */
function fwdBody(g: DwGeometry, taps: [number, number][], relaxed: boolean): number[] {
  // params 0 x, 1 w, 2 bias, 3 out, 4 rows, 5 count, 6 c4, 7 lo, 8 hi;
  // i32 locals 9 pr, 10 qr, 11 p, 12 q, 13 r, 14 k; v128 locals 15 lo, 16 hi, 17 bias, 18 acc, 19.. taps
  const [LO, HI, B, ACC] = [15, 16, 17, 18];
  const W = (t: number) => 19 + t;
  const px = g.c * 4;
  const row = g.w * px;
  const pixel = [
    ...get(B), ...set(ACC),
    ...taps.flatMap(([i, j], t) => [...get(11), ...vloadAt(i * row + j * px), ...get(W(t)), ...macInto(ACC, relaxed)]),
    ...get(12), ...get(ACC), ...get(LO), ...fpmax, ...get(HI), ...fpmin, ...vstore,
    ...bump(11, i32(g.sw * px)), ...bump(12, i32(px)),
  ];
  const outRow = [...get(9), ...set(11), ...get(10), ...set(12), ...get(5), ...set(14), ...countdown(14, pixel), ...bump(9, i32(g.sh * row)), ...bump(10, i32(g.wo * px))];
  const vector = [
    ...taps.flatMap(([i, j], t) => [...get(1), ...vloadAt((i * g.kw + j) * px), ...set(W(t))]),
    ...get(2), ...vload, ...set(B),
    ...get(0), ...set(9), ...get(3), ...set(10), ...get(4), ...set(13), ...countdown(13, outRow),
    ...bump(0, i32(16)), ...bump(1, i32(16)), ...bump(2, i32(16)), ...bump(3, i32(16)),
  ];
  return [...get(7), ...splat, ...set(LO), ...get(8), ...splat, ...set(HI), ...countdown(6, vector)];
}

/**
 * grad(x, dy, acc, rows, count, c4): for each of c4 channel vectors, the variant's tap sums
 * of x * dy over `rows` output rows of `count` pixels, in registers, then added into
 * acc [kh, kw, c] (float32; the caller flushes it into float64 totals).
 */
function gradBody(g: DwGeometry, taps: [number, number][], relaxed: boolean): number[] {
  // params 0 x, 1 dy, 2 acc, 3 rows, 4 count, 5 c4; i32 locals 6 pr, 7 qr, 8 p, 9 q, 10 r, 11 k; v128 locals 12 d, 13.. sums
  const D = 12;
  const A = (t: number) => 13 + t;
  const px = g.c * 4;
  const row = g.w * px;
  const pixel = [
    ...get(9), ...vload, ...set(D),
    ...taps.flatMap(([i, j], t) => [...get(8), ...vloadAt(i * row + j * px), ...get(D), ...macInto(A(t), relaxed)]),
    ...bump(8, i32(g.sw * px)), ...bump(9, i32(px)),
  ];
  const outRow = [...get(6), ...set(8), ...get(7), ...set(9), ...get(4), ...set(11), ...countdown(11, pixel), ...bump(6, i32(g.sh * row)), ...bump(7, i32(g.wo * px))];
  const vector = [
    ...taps.flatMap((_, t) => [...vzero, ...set(A(t))]),
    ...get(0), ...set(6), ...get(1), ...set(7), ...get(3), ...set(10), ...countdown(10, outRow),
    ...taps.flatMap(([i, j], t) => {
      const off = (i * g.kw + j) * px;
      return [...get(2), ...get(2), ...vloadAt(off), ...get(A(t)), ...fadd, ...vstoreAt(off)];
    }),
    ...bump(0, i32(16)), ...bump(1, i32(16)), ...bump(2, i32(16)),
  ];
  return countdown(5, vector);
}

/** flush(tmp, totals, n4): totals (float64) += tmp (float32), tmp = 0, over 4 * n4 values. */
function flushBody(): number[] {
  // params 0 tmp, 1 totals, 2 n4; v128 local 3 v
  const promoteLow = simd(0x5f);
  const f64add = simd(0xf0);
  const highHalf = [...simd(0x0d), 8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15];
  const step = [
    ...get(0), ...vload, ...set(3),
    ...get(1), ...get(1), ...vloadAt(0), ...get(3), ...promoteLow, ...f64add, ...vstoreAt(0),
    ...get(1), ...get(1), ...vloadAt(16), ...get(3), ...get(3), ...highHalf, ...promoteLow, ...f64add, ...vstoreAt(16),
    ...get(0), ...vzero, ...vstore,
    ...bump(0, i32(16)), ...bump(1, i32(32)),
  ];
  return countdown(2, step);
}

/** The in-bounds taps of a (row run, column run) window. */
function tapsOf(r: Run, c: Run): [number, number][] {
  const taps: [number, number][] = [];
  for (let i = r.t0; i < r.t1; i++) for (let j = c.t0; j < c.t1; j++) taps.push([i, j]);
  return taps;
}

function buildModule(memory: WebAssembly.Memory, g: DwGeometry, relaxed: boolean): DwModule {
  const rows = runsOf(g.ho, g.h, g.kh, g.sh, g.pt);
  const cols = runsOf(g.wo, g.w, g.kw, g.sw, g.pl);
  const variants = new Map<string, [number, number][]>();
  for (const r of rows) for (const c of cols) variants.set(variantKey(r, c), tapsOf(r, c));
  const keys = [...variants.keys()];
  const codes: number[][] = [];
  for (const k of keys) codes.push(code([[6, I32], [4 + variants.get(k)!.length, V128]], fwdBody(g, variants.get(k)!, relaxed)));
  for (const k of keys) codes.push(code([[6, I32], [1 + variants.get(k)!.length, V128]], gradBody(g, variants.get(k)!, relaxed)));
  codes.push(code([[1, V128]], flushBody()));
  const types = [fnType([I32, I32, I32, I32, I32, I32, I32, F32, F32]), fnType([I32, I32, I32, I32, I32, I32]), fnType([I32, I32, I32])];
  const exports: [string, number][] = [...keys.map((k, f): [string, number] => [`fwd${k}`, f]), ...keys.map((k, f): [string, number] => [`grad${k}`, keys.length + f]), ['flush', 2 * keys.length]];
  const shared = typeof SharedArrayBuffer === 'function' && memory.buffer instanceof SharedArrayBuffer;
  const bytes = moduleBytes(shared, types, [...keys.map(() => 0), ...keys.map(() => 1), 2], exports, codes);
  const module = new WebAssembly.Module(bytes);
  const e = new WebAssembly.Instance(module, { env: { memory } }).exports as Record<string, never>;
  const names = (prefix: string) => rows.map((r) => cols.map((c) => `${prefix}${variantKey(r, c)}`));
  const table = <F>(prefix: string) => names(prefix).map((row) => row.map((name) => e[name] as F));
  return { rows, cols, fwd: table<FwdFn>('fwd'), grad: table<GradFn>('grad'), flush: e.flush, module, fwdNames: names('fwd'), gradNames: names('grad') };
}

const modules = new WeakMap<WebAssembly.Memory, Map<string, DwModule>>();

function moduleFor(backend: tf.KernelBackend, g: DwGeometry): DwModule | null {
  const memory = backendMemory(backend);
  if (!memory) return null;
  let byGeometry = modules.get(memory);
  if (!byGeometry) modules.set(memory, (byGeometry = new Map()));
  // Everything but the batch (a template string: JSON.stringify with a key list cost 0.3 ms a training step).
  const key = `${g.h} ${g.w} ${g.c} ${g.ho} ${g.wo} ${g.kh} ${g.kw} ${g.sh} ${g.sw} ${g.pt} ${g.pl}`;
  let m = byGeometry.get(key);
  if (!m) {
    try {
      m = buildModule(memory, g, relaxedSimd());
    } catch {
      return null; // no wasm SIMD here: callers use their other paths
    }
    byGeometry.set(key, m);
  }
  return m;
}

let enabled = process.env.FINETUNE_DIRECT_DEPTHWISE !== '0';

/** Turn the direct kernels on or off (FINETUNE_DIRECT_DEPTHWISE=0 starts with them off); returns the previous setting. */
export function setDirectDepthwise(on: boolean): boolean {
  const was = enabled;
  enabled = on;
  return was;
}

/** The geometry of a depthwise conv when the direct kernels handle it, else null. */
export function dwGeometry(info: ConvInfo): DwGeometry | null {
  const ok = enabled && info.inChannels === info.outChannels && info.inChannels % 4 === 0 && info.dilationHeight === 1 && info.dilationWidth === 1 && info.filterHeight * info.filterWidth <= MAX_TAPS;
  if (!ok) return null;
  return { n: info.batchSize, h: info.inHeight, w: info.inWidth, c: info.inChannels, ho: info.outHeight, wo: info.outWidth, kh: info.filterHeight, kw: info.filterWidth, sh: info.strideHeight, sw: info.strideWidth, pt: info.padInfo.top, pl: info.padInfo.left };
}

/**
 * The stride-1 input gradient's geometry: dx is the forward conv of dy (as input) with the
 * spatially flipped filter, padded by k - 1 - pad before. Null for strided convs.
 */
function dwInputGradGeometry(g: DwGeometry): DwGeometry | null {
  if (g.sh !== 1 || g.sw !== 1 || g.pt > g.kh - 1 || g.pl > g.kw - 1) return null;
  return { ...g, h: g.ho, w: g.wo, ho: g.h, wo: g.w, pt: g.kh - 1 - g.pt, pl: g.kw - 1 - g.pl };
}

/** Byte offset of tap (0, 0) of output pixel (n, o, p)'s window, relative to the input's start. */
const windowAt = (g: DwGeometry, n: number, o: number, p: number) => ((n * g.h + o * g.sh - g.pt) * g.w + p * g.sw - g.pl) * g.c * 4;

/** Cache lines one channel vector's pass may touch before the next vector reuses them. */
const PASS_LINES = 128;

/**
 * Output rows per call. Each call runs its channel vectors one after another over the same
 * pixels, so the next vector finds their cache lines in L1 only if one pass touches few of
 * them: with all of a 14x14 image in one pass, 288 channels ran 2.5x slower than 192 (the
 * pixels' lines, 1152 bytes apart, crowded a few L1 sets).
 */
function bandRows(g: DwGeometry): number {
  return Math.max(1, Math.floor(PASS_LINES / (g.sh * g.w + g.wo)));
}

/** The windows of the first image may start before the input: only safe when that stays inside the heap. */
const fits = (g: DwGeometry, x: number) => x + windowAt(g, 0, 0, 0) >= 0;

/**
 * out = clamp(depthwise(x, filter) + bias, lo, hi) as a new [n, ho, wo, c] tensor, or null
 * when this geometry isn't handled here. `bias` may be omitted (zero).
 */
export function depthwiseDirect(io: BackendIO, g: DwGeometry, x: TensorInfo, filter: TensorInfo, bias: TensorInfo | undefined, lo = -Infinity, hi = Infinity): TensorInfo | null {
  const backend = io.backend;
  const m = moduleFor(backend, g);
  const xAt = heapOffset(backend, x);
  if (!m || !fits(g, xAt)) return null;
  const out = io.alloc([g.n, g.ho, g.wo, g.c]);
  const zeros = bias ? null : io.alloc([g.c], true);
  const [wAt, bAt, oAt] = [heapOffset(backend, filter), heapOffset(backend, bias ?? zeros!), heapOffset(backend, out)];
  const image = (n: number, call?: (i: number, j: number, args: Parameters<FwdFn>) => void) => forwardRows(m, g, xAt + n * g.h * g.w * g.c * 4, wAt, bAt, oAt + n * g.ho * g.wo * g.c * 4, 0, g.ho, lo, hi, call);
  // With two threads the GEMM helper takes the second half of the images (the same calls).
  const helper = g.n > 1 ? helperThread(backend) : null;
  const mine = helper ? Math.ceil(g.n / 2) : g.n;
  const here = () => {
    for (let n = 0; n < mine; n++) image(n);
  };
  try {
    if (helper) {
      const ids = m.fwdNames.map((row) => helper.functionIds(m.module, row));
      const list: number[] = [];
      for (let n = mine; n < g.n; n++) image(n, (i, j, args) => list.push(LIST_CALL, ids[i][j], args.length, ...args));
      helper.alongside(list, here);
    } else here();
  } finally {
    if (zeros) io.dispose(zeros);
  }
  return out;
}

/**
 * Output rows [o0, o1) of one image, as calls call(i, j, args) of fwd[i][j]. `x` and `out`
 * are the byte addresses where that image's row 0 is (or would be: a caller holding only
 * some input rows passes a virtual start; only the rows these outputs' windows need are read).
 */
function forwardRows(m: DwModule, g: DwGeometry, x: number, w: number, b: number, out: number, o0: number, o1: number, lo: number, hi: number, call: (i: number, j: number, args: Parameters<FwdFn>) => void = (i, j, args) => m.fwd[i][j](...args)): void {
  const c4 = g.c / 4;
  const band = bandRows(g);
  m.rows.forEach((r, i) => {
    const end = Math.min(r.o1, o1);
    for (let a = Math.max(r.o0, o0); a < end; a += band) {
      const rows = Math.min(band, end - a);
      m.cols.forEach((c, j) => call(i, j, [x + windowAt(g, 0, a, c.o0), w, b, out + (a * g.wo + c.o0) * g.c * 4, rows, c.o1 - c.o0, c4, lo, hi]));
    }
  });
}

/** The direct forward kernel for `g` as a function of output rows of one image (see forwardRows). */
export interface DwRows {
  /** Run output rows [o0, o1) here. */
  run(x: number, w: number, b: number, out: number, o0: number, o1: number, lo: number, hi: number): void;
  /** Append the same calls to `list`, for `helper` to run (GemmHelper.runList). */
  record(helper: GemmHelper, list: number[], x: number, w: number, b: number, out: number, o0: number, o1: number, lo: number, hi: number): void;
}

/** The row-band form of the direct forward kernel, for a caller that produces its input band by band; null when not handled. */
export function depthwiseRowsKernel(backend: tf.KernelBackend, g: DwGeometry): DwRows | null {
  const m = moduleFor(backend, g);
  if (!m) return null;
  return {
    run: (x, w, b, out, o0, o1, lo, hi) => forwardRows(m, g, x, w, b, out, o0, o1, lo, hi),
    record: (helper, list, x, w, b, out, o0, o1, lo, hi) => {
      const ids = m.fwdNames.map((row) => helper.functionIds(m.module, row));
      forwardRows(m, g, x, w, b, out, o0, o1, lo, hi, (i, j, args) => list.push(LIST_CALL, ids[i][j], args.length, ...args));
    },
  };
}

/**
 * The filter gradient [kh, kw, c, 1] of the depthwise conv of x with output gradient dy:
 * float32 sums of at most TERMS_PER_FLUSH terms each, added up in float64. A batch of two or
 * more images is summed in two halves, each into its own totals, added at the end: with two
 * threads the GEMM helper takes the second half (the same calls, so the same result on one
 * thread or two). Null when this geometry isn't handled here.
 */
export function depthwiseFilterGradDirect(io: BackendIO, g: DwGeometry, x: TensorInfo, dy: TensorInfo): TensorInfo | null {
  const backend = io.backend;
  const m = moduleFor(backend, g);
  const xAt = heapOffset(backend, x);
  if (!m || !fits(g, xAt)) return null;
  const taps = g.kh * g.kw * g.c;
  const halves = g.n >= 2 ? 2 : 1;
  const tmp = io.alloc([halves * taps], true);
  const totals = io.alloc([halves * 2 * taps], true); // float64 [halves, taps]
  const [tAt, sAt, dAt] = [heapOffset(backend, tmp), heapOffset(backend, totals), heapOffset(backend, dy)];
  const c4 = g.c / 4;
  const rowsPerChunk = Math.max(1, Math.min(bandRows(g), Math.floor(TERMS_PER_FLUSH / g.wo)));
  /** Images [n0, n1) into sums (float32, then float64 totals), as calls of grad[i][j] and of flush. */
  const sum = (n0: number, n1: number, t: number, s: number, grad: (i: number, j: number, args: Parameters<GradFn>) => void, flush: () => void) => {
    let pending = 0;
    for (let n = n0; n < n1; n++) {
      for (let o0 = 0; o0 < g.ho; o0 += rowsPerChunk) {
        const o1 = Math.min(g.ho, o0 + rowsPerChunk);
        const terms = (o1 - o0) * g.wo;
        if (pending + terms > TERMS_PER_FLUSH) {
          flush();
          pending = 0;
        }
        pending += terms;
        m.rows.forEach((r, i) => {
          const a = Math.max(o0, r.o0);
          const b = Math.min(o1, r.o1);
          if (a < b) m.cols.forEach((c, j) => grad(i, j, [xAt + windowAt(g, n, a, c.o0), dAt + ((n * g.ho + a) * g.wo + c.o0) * g.c * 4, t, b - a, c.o1 - c.o0, c4]));
        });
      }
    }
    flush();
  };
  // Images [0, half) into the first totals, [half, n) into the second.
  const half = halves === 2 ? Math.ceil(g.n / 2) : g.n;
  const [t1, s1] = [tAt + 4 * taps, sAt + 8 * taps];
  const run = (n0: number, n1: number, t: number, s: number) =>
    sum(n0, n1, t, s, (i, j, args) => m.grad[i][j](...args), () => m.flush(t, s, taps / 4));
  const helper = halves === 2 ? helperThread(backend) : null;
  if (helper) {
    const ids = m.gradNames.map((row) => helper.functionIds(m.module, row));
    const [flushId] = helper.functionIds(m.module, ['flush']);
    const list: number[] = [];
    sum(half, g.n, t1, s1, (i, j, args) => list.push(LIST_CALL, ids[i][j], args.length, ...args), () => list.push(LIST_CALL, flushId, 3, t1, s1, taps / 4));
    helper.alongside(list, () => run(0, half, tAt, sAt));
  } else {
    run(0, half, tAt, sAt);
    if (halves === 2) run(half, g.n, t1, s1);
  }
  const out = io.alloc([g.kh, g.kw, g.c, 1]);
  const sums = new Float64Array(io.view(totals).buffer, sAt, halves * taps);
  const o = io.view(out);
  if (halves === 2) for (let k = 0; k < taps; k++) o[k] = sums[k] + sums[taps + k];
  else o.set(sums);
  io.dispose(tmp);
  io.dispose(totals);
  return out;
}

/** dx [n, h, w, c] of a stride-1 depthwise conv: dy through the flipped filter. Null when not handled here. */
export function depthwiseInputGradDirect(io: BackendIO, g: DwGeometry, dy: TensorInfo, filter: TensorInfo): TensorInfo | null {
  const gi = dwInputGradGeometry(g);
  if (!gi) return null;
  const flipped = io.alloc([g.kh, g.kw, g.c, 1]);
  const src = io.view(filter);
  const dst = io.view(flipped);
  for (let i = 0; i < g.kh; i++) {
    for (let j = 0; j < g.kw; j++) {
      const s0 = (i * g.kw + j) * g.c;
      dst.set(src.subarray(s0, s0 + g.c), ((g.kh - 1 - i) * g.kw + (g.kw - 1 - j)) * g.c);
    }
  }
  const dx = depthwiseDirect(io, gi, dy, flipped, undefined);
  io.dispose(flipped);
  return dx;
}
