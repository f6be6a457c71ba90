/**
 * A register-blocked float32 GEMM in hand-assembled WebAssembly SIMD, for the training
 * kernels' matmuls. XNNPACK's matmul (tfjs-backend-wasm's BatchMatMul) treats its second
 * operand as weights and repacks it on every call, and only its non-transposed form is fast,
 * so the conv gradients paid for transposes and repacking of large activations on every
 * step. Here A may be read in either layout (rows or columns contiguous, so X^T needs no
 * transpose), B is packed block by block into cache-sized panels, an optional bias and
 * clamp (a fused ReLU/ReLU6) are applied in the store, and, where the engine allows relaxed
 * SIMD, the multiply-adds are fused (f32x4.relaxed_madd: one FMA instruction on x86 with
 * FMA, twice the multiply-add rate). Large GEMMs split over a second thread (GemmHelper).
 *
 * C[M, N] (+)= A[M, K] B[K, N]; N a multiple of 4; element (i, k) of A at
 * a + i * aRowStride + k * aColStride floats; B and C row-major with leading dims.
 * Micro-tiles of up to MR rows x 8 columns live in registers for a K chunk; A's row-major
 * panels are first packed K-major (MR x KC floats of scratch).
 */
import v8 from 'node:v8';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import type * as tf from '@tensorflow/tfjs';
import type { BackendIO, TensorInfo } from './backend-io';
import { F32, I32, V128, add, and, bump, call, code, countdown, eq, fadd, fmadd, fmul, fnType, fpmax, fpmin, f32loadAt, f32storeAt, get, i32, ifElse, moduleBytes, mul, set, shrU, splat, tee, vloadAt, vloadSplatAt, vstoreAt, vstoreLaneAt, vzero } from './wasm-asm';
import { backendMemory, heapOffset } from './simd';

/** Rows per micro-tile: 6 x 8 keeps 12 accumulators + 2 B vectors + 1 splat in 16 registers. */
export const MR = 6;

/** Epilogue flags of a tile (driveGemm spells them as numbers: it must stay self-contained). */
const ACCUMULATE = 1;
const CLAMP = 2;
const BIAS = 4;

/**
 * kern(pa, sa, pb, sb, pc, sc, K, flags, pbias, lo, hi): one mr x (4 nv) tile over K
 * (strides in bytes). Accumulators start at zero, or at the bias row (BIAS); the store
 * adds C's old values (ACCUMULATE) and clamps to [lo, hi] (CLAMP: the fused activation).
 */
function kernelBody(mr: number, nv: number, relaxed: boolean): { locals: number[][]; body: number[] } {
  // params 0 pa, 1 sa, 2 pb, 3 sb, 4 pc, 5 sc, 6 K, 7 flags, 8 pbias, 9 lo, 10 hi (f32);
  // locals 11 k, 12 p (i32); 13 s, 14.. b, then accumulators, then lo, hi splats (v128)
  const S = 13;
  const B = (j: number) => 14 + j;
  const C = (r: number, j: number) => 14 + nv + r * nv + j;
  const LO = 14 + nv + mr * nv;
  const HI = LO + 1;
  const flag = (f: number) => [...get(7), ...i32(f), ...and];
  const initWith = (bias: boolean) => {
    const out: number[] = [];
    for (let r = 0; r < mr; r++) for (let j = 0; j < nv; j++) out.push(...(bias ? [...get(8), ...vloadAt(16 * j)] : vzero), ...set(C(r, j)));
    return out;
  };
  const step: number[] = [];
  for (let j = 0; j < nv; j++) step.push(...get(2), ...vloadAt(16 * j), ...set(B(j)));
  for (let r = 0; r < mr; r++) {
    step.push(...get(0), ...vloadSplatAt(4 * r), ...set(S));
    for (let j = 0; j < nv; j++) {
      step.push(...(relaxed ? [...get(S), ...get(B(j)), ...get(C(r, j)), ...fmadd] : [...get(S), ...get(B(j)), ...fmul, ...get(C(r, j)), ...fadd]), ...set(C(r, j)));
    }
  }
  step.push(...bump(0, get(1)), ...bump(2, get(3)));
  const store = (accumulate: boolean, clamp: boolean) => {
    const out: number[] = [...get(4), ...set(12)];
    for (let r = 0; r < mr; r++) {
      for (let j = 0; j < nv; j++) {
        out.push(...get(12), ...get(C(r, j)));
        if (accumulate) out.push(...get(12), ...vloadAt(16 * j), ...fadd);
        if (clamp) out.push(...get(LO), ...fpmax, ...get(HI), ...fpmin);
        out.push(...vstoreAt(16 * j));
      }
      out.push(...bump(12, get(5)));
    }
    return out;
  };
  return {
    locals: [[2, I32], [1 + nv + mr * nv + 2, V128]],
    body: [
      ...flag(BIAS), ...ifElse(initWith(true), initWith(false)),
      ...get(6), ...set(11), ...countdown(11, step),
      ...get(9), ...splat, ...set(LO), ...get(10), ...splat, ...set(HI),
      ...flag(ACCUMULATE), ...ifElse(
        [...flag(CLAMP), ...ifElse(store(true, true), store(true, false))],
        [...flag(CLAMP), ...ifElse(store(false, true), store(false, false))],
      ),
    ],
  };
}

const kernIndex = (mr: number, nv: number) => (mr - 1) * 2 + (nv - 1);
const rowIndex = (mr: number) => 2 * MR + (mr - 1);
const PACK = 3 * MR;
const PACK_B = PACK + 1;
const PANELS = PACK_B + 1;

/**
 * panels(pa, rsb, csb, sA, pb, pc, sc, K, flags, N, pbStep, pbias, lo, hi, count, packing):
 * `count` full MR-row panels, one after another (packing each into sA first when asked),
 * so a GEMM with small K and N (an early 1x1 conv: K 8, N 48, M 400k) makes two calls
 * from JS per column block instead of two per 6 rows: those calls had cost as much as the
 * arithmetic. A's rows are rsb bytes apart, its K steps csb; C's rows sc.
 */
function panelsBody(): number[] {
  // params 0 pa, 1 rsb, 2 csb, 3 sA, 4 pb, 5 pc, 6 sc, 7 K, 8 flags, 9 N, 10 pbStep, 11 pbias, 12 lo, 13 hi (f32), 14 count, 15 packing
  const row = (pa: number[], sa: number[]) => [...pa, ...sa, ...get(4), ...get(5), ...get(6), ...get(7), ...get(8), ...get(9), ...get(10), ...get(11), ...get(12), ...get(13), ...call(rowIndex(MR))];
  const packed = [...get(0), ...get(1), ...get(2), ...get(3), ...i32(MR), ...get(7), ...call(PACK), ...row(get(3), i32(4 * MR))];
  const direct = row(get(0), get(2));
  return countdown(14, [...get(15), ...ifElse(packed, direct), ...bump(0, [...get(1), ...i32(MR), ...mul]), ...bump(5, [...get(6), ...i32(MR), ...mul])]);
}

/**
 * row(pa, sa, pb, pc, sc, K, flags, N, pbStep, pbias, lo, hi): all column tiles of one row
 * panel against packed B: 8-column panels pbStep bytes apart (rows 32 bytes apart), then a
 * 4-column one (rows 16 bytes apart) when N % 8 == 4.
 */
function rowBody(mr: number): number[] {
  // params 0 pa, 1 sa, 2 pb, 3 pc, 4 sc, 5 K, 6 flags, 7 N, 8 pbStep, 9 pbias, 10 lo, 11 hi; local 12 t
  const args = (sb: number) => [...get(0), ...get(1), ...get(2), ...i32(sb), ...get(3), ...get(4), ...get(5), ...get(6), ...get(9), ...get(10), ...get(11)];
  const tiles = [...args(32), ...call(kernIndex(mr, 2)), ...bump(2, get(8)), ...bump(3, i32(32)), ...bump(9, i32(32))];
  return [...get(7), ...i32(3), ...shrU, ...set(12), ...countdown(12, tiles), ...get(7), ...i32(4), ...and, ...ifElse([...args(16), ...call(kernIndex(mr, 1))], [])];
}

/**
 * packB(src, ldb, dst, kc, n8): B's [kc, 8 * n8] block (row stride ldb bytes) as n8 panels
 * of [kc, 8] floats, each contiguous, so a micro-tile streams its B panel from cache.
 */
function packBBody(): number[] {
  // params 0 src, 1 ldb, 2 dst, 3 kc, 4 n8; locals 5 t, 6 k, 7 q
  const row = [...get(2), ...get(7), ...vloadAt(0), ...vstoreAt(0), ...get(2), ...get(7), ...vloadAt(16), ...vstoreAt(16), ...bump(2, i32(32)), ...bump(7, get(1))];
  return countdown(4, [...get(0), ...set(7), ...get(3), ...set(6), ...countdown(6, row), ...bump(0, i32(32))]);
}

/**
 * pack(src, sai, sak, dst, mr, K): dst[k * mr + r] = A(r, k) (strides in bytes). Full panels
 * of rows with contiguous K (the common case: activations times a filter) go four k at a time:
 * one vector load per row, then its lanes stored to their packed places; the rest element by
 * element. (Packing was 4% of a training step done one float at a time.)
 */
function packBody(): number[] {
  // params 0 src, 1 sai, 2 sak, 3 dst, 4 mr, 5 K; i32 locals 6 k, 7 r, 8 q, 9..14 row pointers,
  // 15 k4, 16 d; v128 locals 17..22 one row's 4 values each
  const Q = (r: number) => 9 + r;
  const V = (r: number) => 17 + r;
  const quad = [
    ...Array.from({ length: MR }, (_, r) => [...get(Q(r)), ...vloadAt(0), ...set(V(r)), ...bump(Q(r), i32(16))]).flat(),
    ...Array.from({ length: 4 }, (_, j) => Array.from({ length: MR }, (_, r) => [...get(16), ...get(V(r)), ...vstoreLaneAt((j * MR + r) * 4, j)]).flat()).flat(),
    ...bump(16, i32(16 * MR)),
  ];
  const fast = [
    ...Array.from({ length: MR }, (_, r) => [...get(0), ...get(1), ...i32(r), ...mul, ...add, ...set(Q(r))]).flat(), // row r at src + r * sai
    ...get(3), ...set(16), ...get(5), ...i32(2), ...shrU, ...set(15), ...countdown(15, quad),
    // The last K % 4 columns go through the element loop below.
    ...get(0), ...get(5), ...i32(-4), ...and, ...i32(4), ...mul, ...add, ...set(0),
    ...get(16), ...set(3), ...get(5), ...i32(3), ...and, ...set(5),
  ];
  const inner = [...get(3), ...get(8), ...f32loadAt(0), ...f32storeAt(0), ...bump(3, i32(4)), ...bump(8, get(1))];
  return [
    ...get(2), ...i32(4), ...eq, ...get(4), ...i32(MR), ...eq, ...and, ...ifElse(fast, []), // sak == 4 && mr == MR
    ...get(5), ...set(6), ...countdown(6, [...get(0), ...set(8), ...get(4), ...set(7), ...countdown(7, inner), ...bump(0, get(2))]),
  ];
}

function gemmModule(shared: boolean, relaxed: boolean): Uint8Array<ArrayBuffer> {
  const kernels: number[][] = [];
  for (let mr = 1; mr <= MR; mr++) {
    for (let nv = 1; nv <= 2; nv++) {
      const k = kernelBody(mr, nv, relaxed);
      kernels.push(code(k.locals, k.body));
    }
  }
  const rows = Array.from({ length: MR }, (_, i) => code([[1, I32]], rowBody(i + 1)));
  const types = [fnType([...new Array(9).fill(I32), F32, F32]), fnType([...new Array(10).fill(I32), F32, F32]), fnType(new Array(6).fill(I32)), fnType(new Array(5).fill(I32)), fnType([...new Array(12).fill(I32), F32, F32, I32, I32])];
  const exports: [string, number][] = [...Array.from({ length: MR }, (_, i): [string, number] => [`row${i + 1}`, rowIndex(i + 1)]), ['pack', PACK], ['pack_b', PACK_B], ['panels', PANELS]];
  return moduleBytes(shared, types, [...new Array(2 * MR).fill(0), ...new Array(MR).fill(1), 2, 3, 4], exports, [...kernels, ...rows, code([[11, I32], [MR, V128]], packBody()), code([[3, I32]], packBBody()), code([], panelsBody())]);
}

let relaxedChecked: boolean | null = null;

/**
 * Whether this engine runs relaxed SIMD. Chromium (Electron) has it on; Node 20's V8 has it
 * behind a flag, which is safe to set before the first module using it is compiled.
 * FINETUNE_RELAXED_SIMD=0 turns it off (the plain multiply + add kernels are then used).
 */
export function relaxedSimd(): boolean {
  if (relaxedChecked !== null) return relaxedChecked;
  if (process.env.FINETUNE_RELAXED_SIMD === '0') return (relaxedChecked = false);
  const probe = () => {
    try {
      return WebAssembly.validate(moduleBytes(false, [fnType([])], [0], [], [code([[3, V128]], [...get(0), ...get(1), ...get(2), ...fmadd, 0x1a])]));
    } catch {
      return false;
    }
  };
  if (!probe()) {
    try {
      v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
    } catch {
      // not settable here: the plain kernels are used
    }
  }
  return (relaxedChecked = probe());
}

type RowFn = (pa: number, sa: number, pb: number, pc: number, sc: number, k: number, flags: number, n: number, pbStep: number, pbias: number, lo: number, hi: number) => void;
type PanelsFn = (pa: number, rsb: number, csb: number, sA: number, pb: number, pc: number, sc: number, k: number, flags: number, n: number, pbStep: number, pbias: number, lo: number, hi: number, count: number, packing: number) => void;

export interface Gemm {
  readonly relaxed: boolean;
  readonly rows: RowFn[];
  readonly pack: (src: number, sai: number, sak: number, dst: number, mr: number, k: number) => void;
  readonly packB: (src: number, ldb: number, dst: number, kc: number, n8: number) => void;
  readonly panels: PanelsFn;
  /** The second thread, started on first use (null: single-threaded memory or no workers). */
  helper(): GemmHelper | null;
  /**
   * Byte offset of a scratch buffer of at least `floats` floats, kept between calls (a few
   * hundred KB at most): per-call allocations of packed panels fragmented the wasm heap.
   */
  scratch(io: BackendIO, floats: number): number;
}

const cache = new WeakMap<WebAssembly.Memory, Map<boolean, Gemm | null>>();

/** The GEMM bound to a wasm backend's memory, or null (not wasm, or no wasm SIMD here). */
export function gemmFor(backend: tf.KernelBackend, relaxed = relaxedSimd()): Gemm | null {
  const memory = backendMemory(backend);
  if (!memory || (relaxed && !relaxedSimd())) return null;
  let byKind = cache.get(memory);
  if (!byKind) cache.set(memory, (byKind = new Map()));
  if (byKind.has(relaxed)) return byKind.get(relaxed)!;
  let g: Gemm | null = null;
  try {
    const shared = typeof SharedArrayBuffer === 'function' && memory.buffer instanceof SharedArrayBuffer;
    const module = new WebAssembly.Module(gemmModule(shared, relaxed));
    const e = new WebAssembly.Instance(module, { env: { memory } }).exports as Record<string, unknown>;
    let helper: GemmHelper | null | undefined;
    let scratch: { info: TensorInfo; floats: number } | null = null;
    g = {
      relaxed,
      rows: Array.from({ length: MR }, (_, i) => e[`row${i + 1}`] as RowFn),
      pack: e.pack as Gemm['pack'],
      packB: e.pack_b as Gemm['packB'],
      panels: e.panels as PanelsFn,
      helper: () => (helper === undefined ? (helper = shared ? GemmHelper.start(module, memory) : null) : helper),
      scratch: (io, floats) => {
        if (!scratch || scratch.floats < floats) {
          if (scratch) io.dispose(scratch.info);
          scratch = { info: io.alloc([floats]), floats };
        }
        return heapOffset(io.backend, scratch.info);
      },
    };
  } catch {
    g = null;
  }
  byKind.set(relaxed, g);
  return g;
}

export interface GemmOperands {
  /** A's data; element (i, k) at i * aRowStride + k * aColStride floats from its start (+ aOffset). */
  a: TensorInfo;
  aOffset?: number;
  aRowStride: number;
  aColStride: number;
  /** B row-major [K, ldb] (+ bOffset floats); C row-major [M, ldc] (+ cOffset floats). */
  b: TensorInfo;
  bOffset?: number;
  ldb: number;
  c: TensorInfo;
  cOffset?: number;
  ldc: number;
  m: number;
  n: number;
  k: number;
  /** Add into C instead of overwriting it. */
  accumulate?: boolean;
  /** Fused epilogue: C = clamp(A B + bias[j], lo, hi) (bias: N floats; clamp when lo/hi given). */
  bias?: TensorInfo;
  lo?: number;
  hi?: number;
}

/** K per pass: C accumulates over K chunks so the A and B blocks of a pass stay in cache. */
const KC = 256;
/** B floats per packed block (kc x nc, 128 KB: half of a typical L2). */
const B_BLOCK = 32768;

/** One thread's share of a GEMM, as numbers only (it crosses to the helper thread). */
const P = { a0: 0, rs: 1, cs: 2, b0: 3, ldb: 4, c0: 5, ldc: 6, m: 7, n: 8, k: 9, acc: 10, clamp: 11, lo: 12, hi: 13, bias0: 14, sA: 15, sB: 16, nc0: 17, KC: 18, MR: 19 } as const;
const P_LEN = 20;

/**
 * The loops, self-contained (no outer references): the helper thread runs this very
 * function from its source. K chunks > column blocks (B packed into 8-column panels) >
 * MR-row panels of A (packed K-major when A's rows are contiguous) > 8-column tiles.
 */
function driveGemm({ rows, pack, packB, panels }: Pick<Gemm, 'rows' | 'pack' | 'packB' | 'panels'>, p: Float64Array): void {
  const [a0, rs, cs, b0, ldb, c0, ldc, m, n, k, acc, clamp, lo, hi, bias0, sA, sB, nc0, KC, MR] = p;
  for (let k0 = 0; k0 < k; k0 += KC) {
    const kc = Math.min(KC, k - k0);
    // Epilogue flags: 1 accumulate, 2 clamp (last chunk), 4 start from the bias (first chunk).
    const flags = (acc || k0 > 0 ? 1 : 0) | (clamp && k0 + KC >= k ? 2 : 0) | (bias0 && k0 === 0 ? 4 : 0);
    for (let j0 = 0; j0 < n; j0 += nc0) {
      const nc = Math.min(nc0, n - j0);
      const n8 = nc >> 3;
      // Full 8-column panels, then a 4-column remainder (rows 16 bytes apart).
      packB(b0 + (k0 * ldb + j0) * 4, ldb * 4, sB, kc, n8);
      if (nc & 4) pack(b0 + (k0 * ldb + j0 + 8 * n8) * 4, 4, ldb * 4, sB + n8 * kc * 32, 4, kc);
      const full = Math.floor(m / MR);
      const pbias = bias0 ? bias0 + j0 * 4 : 0;
      // The full row panels in one call (packed K-major first when A's rows are not contiguous), then the rest.
      if (full) panels(a0 + k0 * cs * 4, rs * 4, cs * 4, sA, sB, c0 + j0 * 4, ldc * 4, kc, flags, nc, kc * 32, pbias, lo, hi, full, rs !== 1 ? 1 : 0);
      for (let i0 = full * MR; i0 < m; i0 += MR) {
        const mr = Math.min(MR, m - i0);
        let pa = a0 + (i0 * rs + k0 * cs) * 4;
        let sa = cs * 4;
        if (rs !== 1) {
          pack(pa, rs * 4, cs * 4, sA, mr, kc);
          pa = sA;
          sa = mr * 4;
        }
        rows[mr - 1](pa, sa, sB, c0 + (i0 * ldc + j0) * 4, ldc * 4, kc, flags, nc, kc * 32, pbias, lo, hi);
      }
    }
  }
}

/** Ops of a call list (Float64 words) run by the helper thread; see GemmHelper.runList. */
export const LIST_GEMM = 1;
export const LIST_CALL = 2;
export const LIST_COPY = 3;

/**
 * A second thread for our kernels (threaded wasm build, 2+ threads): a worker_thread with its
 * own instances of our modules on the backend's shared memory. It takes half of a GEMM's
 * rows or columns (`params`), or runs a call list: GEMMs, calls of registered module
 * exports, and heap copies, recorded by a kernel for its share of the work (runList).
 * Hand-off through Atomics on a small shared control block; the helper spins briefly for
 * the next task of a step, then sleeps. Modules and list buffers reach it through a
 * MessagePort it reads synchronously (receiveMessageOnPort) when woken.
 */
export class GemmHelper {
  private readonly ctrl: Int32Array;
  readonly params: Float64Array;
  private seq = 0;
  private list: Float64Array<ArrayBufferLike> = new Float64Array(0);
  private functions = 0;
  private readonly ids = new WeakMap<WebAssembly.Module, Map<string, number>>();
  private constructor(private readonly worker: Worker, sab: SharedArrayBuffer, private readonly port: MessagePort) {
    this.ctrl = new Int32Array(sab, 0, 4);
    this.params = new Float64Array(sab, 16, P_LEN);
  }

  static start(module: WebAssembly.Module, memory: WebAssembly.Memory): GemmHelper | null {
    try {
      const sab = new SharedArrayBuffer(16 + 8 * P_LEN);
      const { port1, port2 } = new MessageChannel();
      const source = `
const { workerData, receiveMessageOnPort } = require('node:worker_threads');
const { module, memory, sab, mr, port } = workerData;
const e = new WebAssembly.Instance(module, { env: { memory } }).exports;
const gemmFns = { rows: Array.from({ length: mr }, (_, i) => e['row' + (i + 1)]), pack: e.pack, packB: e.pack_b, panels: e.panels };
const drive = ${driveGemm.toString()};
const ctrl = new Int32Array(sab, 0, 4);
const params = new Float64Array(sab, 16, ${P_LEN});
const fns = [];
let list = new Float64Array(0);
function runList(n) {
  const heap = new Float32Array(memory.buffer);
  for (let i = 0; i < n; ) {
    const op = list[i];
    if (op === ${LIST_GEMM}) { drive(gemmFns, list.subarray(i + 1, i + 1 + ${P_LEN})); i += 1 + ${P_LEN}; }
    else if (op === ${LIST_CALL}) { const argc = list[i + 2]; fns[list[i + 1]](...list.subarray(i + 3, i + 3 + argc)); i += 3 + argc; }
    else if (op === ${LIST_COPY}) { heap.copyWithin(list[i + 1], list[i + 2], list[i + 2] + list[i + 3]); i += 4; }
    else throw new Error('bad list op ' + op);
  }
}
let seen = 0;
for (;;) {
  for (let spin = 0; Atomics.load(ctrl, 0) === seen; spin++) if (spin > 20000) { Atomics.wait(ctrl, 0, seen); spin = 0; }
  seen = Atomics.load(ctrl, 0);
  if (seen < 0) break;
  try {
    for (let m; (m = receiveMessageOnPort(port)); ) {
      const msg = m.message;
      if (msg.module) { const x = new WebAssembly.Instance(msg.module, { env: { memory } }).exports; for (const name of msg.names) fns.push(x[name]); }
      if (msg.list) list = new Float64Array(msg.list);
    }
    const n = Atomics.load(ctrl, 3);
    if (n > 0) runList(n); else drive(gemmFns, params);
  } catch (err) { Atomics.store(ctrl, 2, 1); }
  Atomics.store(ctrl, 1, seen);
  Atomics.notify(ctrl, 1);
}`;
      const worker = new Worker(source, { eval: true, workerData: { module, memory, sab, mr: MR, port: port2 }, transferList: [port2] });
      worker.unref();
      port1.unref();
      return new GemmHelper(worker, sab, port1);
    } catch {
      return null;
    }
  }

  /** The helper's function ids of `names` exported by `module` (instantiated there on first use). */
  functionIds(module: WebAssembly.Module, names: string[]): number[] {
    let known = this.ids.get(module);
    if (!known) this.ids.set(module, (known = new Map()));
    const missing = [...new Set(names.filter((n) => !known!.has(n)))];
    if (missing.length) {
      this.port.postMessage({ module, names: missing });
      for (const n of missing) known.set(n, this.functions++);
    }
    return names.map((n) => known!.get(n)!);
  }

  /** Start the helper on `params` (already filled in). */
  post(): number {
    Atomics.store(this.ctrl, 3, 0);
    return this.wake();
  }

  /** Start the helper on a call list of `length` words (LIST_* ops); join() waits for it. */
  runList(words: ArrayLike<number>, length: number): number {
    if (this.list.length < length) {
      this.list = new Float64Array(new SharedArrayBuffer(8 * Math.max(length, 2 * this.list.length)));
      this.port.postMessage({ list: this.list.buffer });
    }
    for (let i = 0; i < length; i++) this.list[i] = words[i];
    Atomics.store(this.ctrl, 3, length);
    return this.wake();
  }

  private wake(): number {
    this.seq = (this.seq % 0x3fffffff) + 1;
    Atomics.store(this.ctrl, 0, this.seq);
    Atomics.notify(this.ctrl, 0);
    return this.seq;
  }

  /** Run `list` (LIST_* ops) on the helper while `here` runs on this thread; returns when both are done. */
  alongside(list: number[], here: () => void): void {
    const seq = this.runList(list, list.length);
    try {
      here();
    } finally {
      this.join(seq);
    }
  }

  /** Wait for the helper's share; throws if it failed. */
  join(seq: number): void {
    for (let spin = 0; Atomics.load(this.ctrl, 1) !== seq; spin++) {
      if (spin > 20000) {
        const seen = Atomics.load(this.ctrl, 1);
        if (seen !== seq) Atomics.wait(this.ctrl, 1, seen, 50);
      }
    }
    if (Atomics.exchange(this.ctrl, 2, 0)) throw new Error('internal: the GEMM helper thread failed');
  }
}

let gemmThreads = 1;

/** Threads our GEMM may use (the backend's thread count; 1 or 2 are used). */
export function setGemmThreads(n: number): void {
  gemmThreads = Math.max(1, Math.floor(n));
}

/** The thread count set above. */
export function gemmThreadCount(): number {
  return gemmThreads;
}

/** The helper thread our kernels split their work with: when two threads are in use, else null. */
export function helperThread(backend: tf.KernelBackend): GemmHelper | null {
  return gemmThreads > 1 ? (gemmFor(backend)?.helper() ?? null) : null;
}

/** Below this many multiply-adds a second thread costs more than it saves. */
const SPLIT_MIN_MACS = 1 << 20;

/** Blocking of a GEMM: its K and N block sizes and the scratch floats one thread packs into. */
function blocking(o: GemmOperands): { kc0: number; nc0: number; aFloats: number; bFloats: number } {
  const kc0 = Math.min(o.k, KC);
  const nc0 = Math.min(o.n, Math.max(8, Math.floor(B_BLOCK / Math.max(1, kc0) / 8) * 8));
  return { kc0, nc0, aFloats: o.aRowStride !== 1 ? MR * kc0 : 0, bFloats: Math.ceil(nc0 / 8) * 8 * kc0 };
}

/** Scratch floats one thread's share of any GEMM needs at most (see blocking). */
export const GEMM_SCRATCH_FLOATS = MR * KC + B_BLOCK + 8 * KC;

/** The whole GEMM as one thread's parameters, packing into `scratch` (byte offset). */
function plan(backend: tf.KernelBackend, o: GemmOperands, scratch: number): Float64Array {
  const at = (t: TensorInfo, off = 0) => heapOffset(backend, t) + off * 4;
  const { nc0, aFloats } = blocking(o);
  const p = new Float64Array(P_LEN);
  p[P.a0] = at(o.a, o.aOffset);
  p[P.rs] = o.aRowStride;
  p[P.cs] = o.aColStride;
  p[P.b0] = at(o.b, o.bOffset);
  p[P.ldb] = o.ldb;
  p[P.c0] = at(o.c, o.cOffset);
  p[P.ldc] = o.ldc;
  p[P.m] = o.m;
  p[P.n] = o.n;
  p[P.k] = o.k;
  p[P.acc] = o.accumulate ? 1 : 0;
  p[P.clamp] = o.lo !== undefined || o.hi !== undefined ? 1 : 0;
  p[P.lo] = o.lo ?? -Infinity;
  p[P.hi] = o.hi ?? Infinity;
  p[P.bias0] = o.bias ? at(o.bias) : 0;
  p[P.sA] = aFloats ? scratch : 0;
  p[P.sB] = scratch + aFloats * 4;
  p[P.nc0] = nc0;
  p[P.KC] = KC;
  p[P.MR] = MR;
  return p;
}

/**
 * A GEMM on this thread only, packing into `scratch` (a byte offset with GEMM_SCRATCH_FLOATS
 * floats), or, with `record`, appended to a helper's call list instead (LIST_GEMM). For
 * kernels that split their own work between the threads. N must be a multiple of 4.
 */
export function gemmOnThread(io: BackendIO, g: Gemm, o: GemmOperands, scratch: number, record?: number[]): void {
  if (o.n % 4 !== 0 || o.k === 0) throw new Error(`internal: gemmOnThread needs N in fours and K > 0 (N ${o.n}, K ${o.k})`);
  if (o.m === 0 || o.n === 0) return;
  const p = plan(io.backend, o, scratch);
  if (record) record.push(LIST_GEMM, ...p);
  else driveGemm(g, p);
}

/** C (+)= A B on the wasm heap; false (nothing done) when N is not a multiple of 4. */
export function gemm(io: BackendIO, g: Gemm, o: GemmOperands): boolean {
  if (o.n % 4 !== 0) return false;
  if (o.m === 0 || o.n === 0) return true;
  if (o.k === 0) {
    if (!o.accumulate) for (let i = 0; i < o.m; i++) io.view(o.c).fill(0, (o.cOffset ?? 0) + i * o.ldc, (o.cOffset ?? 0) + i * o.ldc + o.n);
    return true;
  }
  const helper = gemmThreads > 1 && o.m * o.n * o.k >= SPLIT_MIN_MACS && (o.m >= 2 * MR || o.n >= 16) ? g.helper() : null;
  const parts = helper ? 2 : 1;
  const { aFloats, bFloats } = blocking(o);
  const scratch = g.scratch(io, parts * (aFloats + bFloats));
  const p = plan(io.backend, o, scratch);
  // Both threads' A panels first, then their B blocks.
  p[P.sB] = scratch + parts * aFloats * 4;
  if (helper) {
    // The helper takes the second half of the rows (whole MR panels) or of the columns (whole 8-column tiles).
    const q = helper.params;
    q.set(p);
    q[P.sA] = aFloats ? p[P.sA] + aFloats * 4 : 0;
    q[P.sB] = p[P.sB] + bFloats * 4;
    if (o.m >= o.n && o.m >= 2 * MR) {
      const half = Math.ceil(o.m / 2 / MR) * MR;
      p[P.m] = half;
      q[P.m] = o.m - half;
      q[P.a0] += half * o.aRowStride * 4;
      q[P.c0] += half * o.ldc * 4;
    } else {
      const half = Math.ceil(o.n / 2 / 8) * 8;
      p[P.n] = half;
      q[P.n] = o.n - half;
      q[P.b0] += half * 4;
      q[P.c0] += half * 4;
      if (o.bias) q[P.bias0] += half * 4;
    }
    const seq = helper.post();
    try {
      driveGemm(g, p);
    } finally {
      helper.join(seq);
    }
  } else {
    driveGemm(g, p);
  }
  return true;
}
