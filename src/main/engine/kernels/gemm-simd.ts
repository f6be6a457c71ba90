/**
 * A register-blocked float32 GEMM in hand-assembled WebAssembly SIMD, for the training
 * kernels' matmuls. XNNPACK's matmul (tfjs-backend-wasm's BatchMatMul) treats its second
 * operand as weights and repacks it on every call, and only its non-transposed form is fast,
 * so the conv gradients paid for transposes and repacking of large activations on every
 * step. Here A may be read in either layout (rows or columns contiguous), B is read in
 * place, and, where the engine allows relaxed SIMD, the multiply-adds are fused
 * (f32x4.relaxed_madd: one FMA instruction on x86 with FMA, twice the multiply-add rate).
 *
 * C[M, N] (+)= A[M, K] B[K, N]; N a multiple of 4; element (i, k) of A at
 * a + i * aRowStride + k * aColStride floats; B and C row-major with leading dims.
 * Micro-tiles of up to MR rows x 8 columns live in registers for the whole K loop; A's
 * row-major panels are first packed K-major (MR x K floats of scratch).
 */
import v8 from 'node:v8';
import type * as tf from '@tensorflow/tfjs';
import type { BackendIO, TensorInfo } from './backend-io';
import { I32, V128, add, bump, call, code, countdown, fadd, fmadd, fmul, fnType, f32loadAt, f32storeAt, get, i32, ifElse, moduleBytes, set, tee, vloadAt, vloadSplatAt, vstoreAt, vzero } from './wasm-asm';
import { backendMemory, heapOffset } from './simd';

/** Rows per micro-tile: 6 x 8 keeps 12 accumulators + 2 B vectors + 1 splat in 16 registers. */
export const MR = 6;

/** kern(pa, sa, pb, sb, pc, sc, K, acc): one mr x (4 nv) tile over K (strides in bytes). */
function kernelBody(mr: number, nv: number, relaxed: boolean): { locals: number[][]; body: number[] } {
  // params 0 pa, 1 sa, 2 pb, 3 sb, 4 pc, 5 sc, 6 K, 7 acc; locals 8 k, 9 p (i32); 10 s, 11.. b, then accumulators (v128)
  const S = 10;
  const B = (j: number) => 11 + j;
  const C = (r: number, j: number) => 11 + nv + r * nv + j;
  const init: number[] = [];
  for (let r = 0; r < mr; r++) for (let j = 0; j < nv; j++) init.push(...vzero, ...set(C(r, j)));
  const step: number[] = [];
  for (let j = 0; j < nv; j++) step.push(...get(2), ...vloadAt(16 * j), ...set(B(j)));
  for (let r = 0; r < mr; r++) {
    step.push(...get(0), ...vloadSplatAt(4 * r), ...set(S));
    for (let j = 0; j < nv; j++) {
      step.push(...(relaxed ? [...get(S), ...get(B(j)), ...get(C(r, j)), ...fmadd] : [...get(S), ...get(B(j)), ...fmul, ...get(C(r, j)), ...fadd]), ...set(C(r, j)));
    }
  }
  step.push(...bump(0, get(1)), ...bump(2, get(3)));
  const store = (accumulate: boolean) => {
    const out: number[] = [...get(4), ...set(9)];
    for (let r = 0; r < mr; r++) {
      for (let j = 0; j < nv; j++) out.push(...get(9), ...get(C(r, j)), ...(accumulate ? [...get(9), ...vloadAt(16 * j), ...fadd] : []), ...vstoreAt(16 * j));
      out.push(...bump(9, get(5)));
    }
    return out;
  };
  return {
    locals: [[2, I32], [1 + nv + mr * nv, V128]],
    body: [...init, ...get(6), ...set(8), ...countdown(8, step), ...get(7), ...ifElse(store(true), store(false))],
  };
}

const kernIndex = (mr: number, nv: number) => (mr - 1) * 2 + (nv - 1);
const rowIndex = (mr: number) => 2 * MR + (mr - 1);
const PACK = 3 * MR;
const PACK_B = PACK + 1;

/**
 * row(pa, sa, pb, pc, sc, K, acc, N, pbStep): all column tiles of one row panel against
 * packed B: 8-column panels pbStep bytes apart (rows 32 bytes apart), then a 4-column one
 * (rows 16 bytes apart) when N % 8 == 4.
 */
function rowBody(mr: number): number[] {
  // params 0 pa, 1 sa, 2 pb, 3 pc, 4 sc, 5 K, 6 acc, 7 N, 8 pbStep; local 9 t
  const args = (sb: number) => [...get(0), ...get(1), ...get(2), ...i32(sb), ...get(3), ...get(4), ...get(5), ...get(6)];
  const tiles = [...args(32), ...call(kernIndex(mr, 2)), ...bump(2, get(8)), ...bump(3, i32(32))];
  return [...get(7), ...i32(3), 0x76, ...set(9), ...countdown(9, tiles), ...get(7), ...i32(4), 0x71, ...ifElse([...args(16), ...call(kernIndex(mr, 1))], [])];
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

/** pack(src, sai, sak, dst, mr, K): dst[k * mr + r] = A(r, k) (strides in bytes). */
function packBody(): number[] {
  // params 0 src, 1 sai, 2 sak, 3 dst, 4 mr, 5 K; locals 6 k, 7 r, 8 q
  const inner = [...get(3), ...get(8), ...f32loadAt(0), ...f32storeAt(0), ...bump(3, i32(4)), ...bump(8, get(1))];
  return [...get(5), ...set(6), ...countdown(6, [...get(0), ...set(8), ...get(4), ...set(7), ...countdown(7, inner), ...bump(0, get(2))])];
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
  const types = [fnType(new Array(8).fill(I32)), fnType(new Array(9).fill(I32)), fnType(new Array(6).fill(I32)), fnType(new Array(5).fill(I32))];
  const exports: [string, number][] = [...Array.from({ length: MR }, (_, i): [string, number] => [`row${i + 1}`, rowIndex(i + 1)]), ['pack', PACK], ['pack_b', PACK_B]];
  return moduleBytes(shared, types, [...new Array(2 * MR).fill(0), ...new Array(MR).fill(1), 2, 3], exports, [...kernels, ...rows, code([[3, I32]], packBody()), code([[3, I32]], packBBody())]);
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

type RowFn = (pa: number, sa: number, pb: number, pc: number, sc: number, k: number, acc: number, n: number, pbStep: number) => void;

export interface Gemm {
  readonly relaxed: boolean;
  readonly rows: RowFn[];
  readonly pack: (src: number, sai: number, sak: number, dst: number, mr: number, k: number) => void;
  readonly packB: (src: number, ldb: number, dst: number, kc: number, n8: number) => void;
}

const cache = new WeakMap<WebAssembly.Memory, Map<boolean, Gemm | null>>();

/** The GEMM bound to a wasm backend's memory, or null (not wasm, no SIMD, or N % 4 != 0 callers). */
export function gemmFor(backend: tf.KernelBackend, relaxed = relaxedSimd()): Gemm | null {
  const memory = backendMemory(backend);
  if (!memory || (relaxed && !relaxedSimd())) return null;
  let byKind = cache.get(memory);
  if (!byKind) cache.set(memory, (byKind = new Map()));
  if (byKind.has(relaxed)) return byKind.get(relaxed)!;
  let g: Gemm | null = null;
  try {
    const shared = typeof SharedArrayBuffer === 'function' && memory.buffer instanceof SharedArrayBuffer;
    const inst = new WebAssembly.Instance(new WebAssembly.Module(gemmModule(shared, relaxed)), { env: { memory } });
    const e = inst.exports as Record<string, unknown>;
    g = { relaxed, rows: Array.from({ length: MR }, (_, i) => e[`row${i + 1}`] as RowFn), pack: e.pack as Gemm['pack'], packB: e.pack_b as Gemm['packB'] };
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
}

/** K per pass: C accumulates over K chunks so the A and B blocks of a pass stay in cache. */
const KC = 256;
/** B floats per packed block (kc x nc, 128 KB: half of a typical L2). */
const B_BLOCK = 32768;

/**
 * C (+)= A B on the wasm heap; false (nothing done) when N is not a multiple of 4.
 * Loops: K chunks (kc) > column blocks (nc, B packed into 8-column panels) > MR-row panels
 * of A (packed K-major when A's rows are contiguous) > the 8-column tiles of the block.
 */
export function gemm(io: BackendIO, g: Gemm, o: GemmOperands): boolean {
  if (o.n % 4 !== 0) return false;
  if (o.m === 0 || o.n === 0) return true;
  if (o.k === 0) {
    if (!o.accumulate) for (let i = 0; i < o.m; i++) io.view(o.c).fill(0, (o.cOffset ?? 0) + i * o.ldc, (o.cOffset ?? 0) + i * o.ldc + o.n);
    return true;
  }
  const backend = io.backend;
  const at = (t: TensorInfo, off = 0) => heapOffset(backend, t) + off * 4;
  const kc0 = Math.min(o.k, KC);
  const nc0 = Math.min(o.n, Math.max(8, Math.floor(B_BLOCK / Math.max(1, kc0) / 8) * 8));
  const packA = o.aRowStride !== 1;
  const scratchA = packA ? io.alloc([MR * kc0]) : null;
  const scratchB = io.alloc([Math.ceil(nc0 / 8) * 8 * kc0]);
  const a0 = at(o.a, o.aOffset);
  const b0 = at(o.b, o.bOffset);
  const c0 = at(o.c, o.cOffset);
  const sA = scratchA ? at(scratchA) : 0;
  const sB = at(scratchB);
  for (let k0 = 0; k0 < o.k; k0 += KC) {
    const kc = Math.min(KC, o.k - k0);
    const acc = o.accumulate || k0 > 0 ? 1 : 0;
    for (let j0 = 0; j0 < o.n; j0 += nc0) {
      const nc = Math.min(nc0, o.n - j0);
      const n8 = nc >> 3;
      // Full 8-column panels, then a 4-column remainder packed with the same 8-float row stride.
      g.packB(b0 + (k0 * o.ldb + j0) * 4, o.ldb * 4, sB, kc, n8);
      if (nc & 4) g.pack(b0 + (k0 * o.ldb + j0 + 8 * n8) * 4, 4, o.ldb * 4, sB + n8 * kc * 32, 4, kc);
      for (let i0 = 0; i0 < o.m; i0 += MR) {
        const mr = Math.min(MR, o.m - i0);
        let pa = a0 + (i0 * o.aRowStride + k0 * o.aColStride) * 4;
        let sa = o.aColStride * 4;
        if (packA) {
          g.pack(pa, o.aRowStride * 4, o.aColStride * 4, sA, mr, kc);
          pa = sA;
          sa = mr * 4;
        }
        g.rows[mr - 1](pa, sa, sB, c0 + (i0 * o.ldc + j0) * 4, o.ldc * 4, kc, acc, nc, kc * 32);
      }
    }
  }
  if (scratchA) io.dispose(scratchA);
  io.dispose(scratchB);
  return true;
}
