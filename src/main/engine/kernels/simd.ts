/**
 * A tiny hand-assembled WebAssembly SIMD module that works in place on tfjs-backend-wasm's
 * memory (it imports the backend's own WebAssembly.Memory, shared or not), for the inner
 * loops JS runs 4-10x slower than 128-bit SIMD: the activation-mask / bias-sum pass, the
 * depthwise gradients' and the BatchNorm fold's strided multiply-adds, row sums and the
 * Adam update. No toolchain is needed: the module is encoded below from opcodes (helpers in
 * wasm-asm.ts). Pointers are byte offsets; counts are in groups of 4 floats.
 */
import * as tf from '@tensorflow/tfjs';
import { F32, I32, V128, add, bump, code, countdown, fadd, fgt, flt, fmul, fnType, get, i32, moduleBytes as assemble, set, shrU, simd, splat, tee, uleb, vand, vload, vloadAt, vstore, vstoreAt } from './wasm-asm';

/**
 * act_mask_sum(dy, y, dz, rows, c4, lo, hi, sums, counts): for each row of 4*c4 floats,
 * dz = dy where lo < y < hi else 0 (a bitwise and with the comparison mask), sums[c] += dz[c];
 * counts (4 int32) += the number of lanes inside the mask (the share the sparse gradients use).
 */
function actMaskSumBody(): number[] {
  // params: 0 dy, 1 y, 2 dz, 3 rows, 4 c4, 5 lo(f32), 6 hi(f32), 7 sums, 8 counts;
  // locals: 9 p, 10 k (i32), 11 z, 12 mask, 13 n, 14 lo, 15 hi, 16 y (v128)
  const inner = [
    ...get(2), // address for the dz store
    ...get(1), ...vload, 0x22, ...uleb(16), ...get(14), ...fgt, // y > lo (y kept for the second test)
    ...get(16), ...get(15), ...flt, // y < hi
    ...vand, 0x22, ...uleb(12), // local.tee mask
    ...get(0), ...vload, ...vand, // dy & mask
    0x22, ...uleb(11), // local.tee z
    ...vstore,
    ...get(13), ...get(12), ...simd(0xb1), ...set(13), // n -= mask (-1 per lane inside)
    ...get(9), ...get(9), ...vload, ...get(11), ...fadd, ...vstore, // sums += z
    ...bump(0, i32(16)), ...bump(1, i32(16)), ...bump(2, i32(16)), ...bump(9, i32(16)),
  ];
  const row = [...get(7), ...set(9), ...get(4), ...set(10), ...countdown(10, inner)];
  return [...get(5), ...splat, ...set(14), ...get(6), ...splat, ...set(15), ...get(8), ...vload, ...set(13), ...countdown(3, row), ...get(8), ...get(13), ...vstore];
}

/** t[o] += x[o] * d[o] for `lanes` consecutive vectors (memarg offsets), pointers in locals. */
function fmaVectors(t: number, x: number, d: number, lanes: number, scalar?: number): number[] {
  const out: number[] = [];
  for (let l = 0; l < lanes; l++) {
    const o = l * 16;
    out.push(...get(t), ...get(t), ...vloadAt(o), ...get(x), ...vloadAt(o), ...(scalar === undefined ? [...get(d), ...vloadAt(o)] : get(scalar)), ...fmul, ...fadd, ...vstoreAt(o));
  }
  return out;
}

function fmaStridedBody(lanes: number): number[] {
  // fma_strided(t, x, d, c4, count, ts, xs, ds): `count` times, t[k] += x[k] * d[k] over
  // 4*c4 floats (c4 a multiple of `lanes`), then t += ts, x += xs, d += ds (bytes).
  // Locals: 8 p, 9 q, 10 s, 11 k. Unrolled `lanes` vectors per iteration.
  const inner = [...fmaVectors(8, 9, 10, lanes), ...bump(8, i32(16 * lanes)), ...bump(9, i32(16 * lanes)), ...bump(10, i32(16 * lanes))];
  const iterations = lanes === 1 ? get(3) : [...get(3), ...i32(Math.log2(lanes)), ...shrU]; // c4 >> log2(lanes)
  const step = [...get(0), ...set(8), ...get(1), ...set(9), ...get(2), ...set(10), ...iterations, ...set(11), ...countdown(11, inner), ...bump(0, get(5)), ...bump(1, get(6)), ...bump(2, get(7))];
  return countdown(4, step);
}

function rowSumBody(): number[] {
  // row_sum(x, sums, rows, c4, _, _): sums[k] += x[row][k] for each of `rows` contiguous rows
  // of 4*c4 floats, in row order. Column blocks of 8 vectors (then single vectors) are summed
  // down the rows in registers. Locals: 6 p, 7 r, 8 blocks, 9 tail, 10 stride (i32); 11-18 acc.
  const [P, R, BLOCKS, TAIL, STRIDE] = [6, 7, 8, 9, 10];
  const ACC = (j: number) => 11 + j;
  const column = (w: number, counter: number) => {
    const load: number[] = [];
    const accumulate: number[] = [];
    const store: number[] = [];
    for (let j = 0; j < w; j++) {
      load.push(...get(1), ...vloadAt(16 * j), ...set(ACC(j)));
      accumulate.push(...get(ACC(j)), ...get(P), ...vloadAt(16 * j), ...fadd, ...set(ACC(j)));
      store.push(...get(1), ...get(ACC(j)), ...vstoreAt(16 * j));
    }
    const rows = [...accumulate, ...bump(P, get(STRIDE))];
    const block = [...load, ...get(0), ...set(P), ...get(2), ...set(R), ...countdown(R, rows), ...store, ...bump(0, i32(16 * w)), ...bump(1, i32(16 * w))];
    return countdown(counter, block);
  };
  return [
    ...get(3), ...i32(4), 0x74 /* shl */, ...set(STRIDE),
    ...get(3), ...i32(3), ...shrU, ...set(BLOCKS), ...get(3), ...i32(7), 0x71 /* and */, ...set(TAIL),
    ...column(8, BLOCKS), ...column(1, TAIL),
  ];
}

function adamBody(): number[] {
  // adam(p, g, m, v, po, mo, vo, n4, beta1, c1, beta2, c2, l2, keep, rbc1, rbc2, eps, lr), per float:
  // gi = g + p l2; m' = m beta1 + gi c1; v' = v beta2 + gi^2 c2; p' = p keep - lr (m' rbc1) / (sqrt(v' rbc2) + eps).
  // Locals: 18..27 the ten f32 params splatted, 28 gi, 29 m', 30 v'.
  const K = (f: number) => 18 + (f - 8);
  const [GI, MI, VI] = [28, 29, 30];
  const [fsub, fdiv, fsqrt] = [simd(0xe5), simd(0xe7), simd(0xe3)];
  const init = [8, 9, 10, 11, 12, 13, 14, 15, 16, 17].flatMap((f) => [...get(f), ...splat, ...set(K(f))]);
  const inner = [
    ...get(1), ...vload, ...get(0), ...vload, ...get(K(12)), ...fmul, ...fadd, ...set(GI),
    ...get(5), ...get(2), ...vload, ...get(K(8)), ...fmul, ...get(GI), ...get(K(9)), ...fmul, ...fadd, ...tee(MI), ...vstore,
    ...get(6), ...get(3), ...vload, ...get(K(10)), ...fmul, ...get(GI), ...get(GI), ...fmul, ...get(K(11)), ...fmul, ...fadd, ...tee(VI), ...vstore,
    ...get(4), ...get(0), ...vload, ...get(K(13)), ...fmul,
    ...get(MI), ...get(K(14)), ...fmul, ...get(VI), ...get(K(15)), ...fmul, ...fsqrt, ...get(K(16)), ...fadd, ...fdiv, ...get(K(17)), ...fmul, ...fsub, ...vstore,
    ...[0, 1, 2, 3, 4, 5, 6].flatMap((q) => bump(q, i32(16))),
  ];
  return [...init, ...countdown(7, inner)];
}

/** i8x16.shuffle of two vectors' 32-bit lanes (0-3 from the first, 4-7 from the second). */
const shuffle32 = (lanes: number[]) => [...simd(0x0d), ...lanes.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3])];

function transposeBody(): number[] {
  // transpose4(src, dst, rows4, cols4, ss, ds): the [4 rows4, 4 cols4] matrix at src (rows ss
  // bytes apart) transposed into dst (rows ds bytes apart), 4x4 blocks in registers.
  // Locals: 6 j, 7 s, 8 d, 9 ss2, 10 ss3, 11 ds2, 12 ds3 (i32); 13-16 a0-a3, 17-20 t0-t3 (v128).
  const [J, S, D, SS2, SS3, DS2, DS3] = [6, 7, 8, 9, 10, 11, 12];
  const A = (k: number) => 13 + k;
  const T = (k: number) => 17 + k;
  const mul = [0x6c];
  const at = (base: number, stride: number[]) => [...get(base), ...stride, ...add];
  const loads = [
    ...get(S), ...vload, ...set(A(0)),
    ...at(S, get(4)), ...vload, ...set(A(1)),
    ...at(S, get(SS2)), ...vload, ...set(A(2)),
    ...at(S, get(SS3)), ...vload, ...set(A(3)),
  ];
  const pairs = [
    ...get(A(0)), ...get(A(1)), ...shuffle32([0, 4, 1, 5]), ...set(T(0)),
    ...get(A(2)), ...get(A(3)), ...shuffle32([0, 4, 1, 5]), ...set(T(1)),
    ...get(A(0)), ...get(A(1)), ...shuffle32([2, 6, 3, 7]), ...set(T(2)),
    ...get(A(2)), ...get(A(3)), ...shuffle32([2, 6, 3, 7]), ...set(T(3)),
  ];
  const stores = [
    ...get(D), ...get(T(0)), ...get(T(1)), ...shuffle32([0, 1, 4, 5]), ...vstore,
    ...at(D, get(5)), ...get(T(0)), ...get(T(1)), ...shuffle32([2, 3, 6, 7]), ...vstore,
    ...at(D, get(DS2)), ...get(T(2)), ...get(T(3)), ...shuffle32([0, 1, 4, 5]), ...vstore,
    ...at(D, get(DS3)), ...get(T(2)), ...get(T(3)), ...shuffle32([2, 3, 6, 7]), ...vstore,
  ];
  const inner = [...loads, ...pairs, ...stores, ...bump(S, i32(16)), ...bump(D, [...get(5), ...i32(4), ...mul])];
  const row = [...get(0), ...set(S), ...get(1), ...set(D), ...get(3), ...set(J), ...countdown(J, inner), ...bump(0, [...get(4), ...i32(4), ...mul]), ...bump(1, i32(16))];
  const init = [...get(4), ...i32(2), ...mul, ...set(SS2), ...get(4), ...i32(3), ...mul, ...set(SS3), ...get(5), ...i32(2), ...mul, ...set(DS2), ...get(5), ...i32(3), ...mul, ...set(DS3)];
  return [...init, ...countdown(2, row)];
}

function moduleBytes(shared: boolean): Uint8Array<ArrayBuffer> {
  const types = [fnType([I32, I32, I32, I32, I32, F32, F32, I32, I32]), fnType([I32, I32, I32, I32, I32, I32, I32, I32]), fnType([I32, I32, I32, I32, I32, I32]), fnType([...new Array(8).fill(I32), ...new Array(10).fill(F32)])];
  const exports: [string, number][] = [['act_mask_sum', 0], ['fma_strided', 1], ['fma_strided2', 2], ['row_sum', 3], ['adam', 4], ['transpose4', 5]];
  return assemble(shared, types, [0, 1, 1, 2, 3, 2], exports, [
    code([[2, I32], [6, V128]], actMaskSumBody()),
    code([[4, I32]], fmaStridedBody(1)),
    code([[4, I32]], fmaStridedBody(2)),
    code([[5, I32], [8, V128]], rowSumBody()),
    code([[13, V128]], adamBody()),
    code([[7, I32], [8, V128]], transposeBody()),
  ]);
}

export interface SimdKernels {
  actMaskSum(dy: number, y: number, dz: number, rows: number, c4: number, lo: number, hi: number, sums: number, counts: number): void;
  /** `count` times: t[k] += x[k] * d[k] over 4*c4 floats, then advance t, x, d by their byte strides. */
  fmaStrided(t: number, x: number, d: number, c4: number, count: number, tStride: number, xStride: number, dStride: number): void;
  /** sums[k] += x[row][k] over `rows` contiguous rows of 4*c4 floats. */
  rowSum(x: number, sums: number, rows: number, c4: number): void;
  /** One Adam/AdamW update over 4*n4 floats (see adamBody); rbc = 1 / bias correction. */
  adam(p: number, g: number, m: number, v: number, po: number, mo: number, vo: number, n4: number, beta1: number, c1: number, beta2: number, c2: number, l2: number, keep: number, rbc1: number, rbc2: number, eps: number, lr: number): void;
  /** dst [cols, rows] = the transpose of src [rows, cols], both multiples of 4 (byte offsets). */
  transpose(src: number, dst: number, rows: number, cols: number): void;
  /** The compiled module (its exports: act_mask_sum, ...), for a helper thread's own instance. */
  module: WebAssembly.Module;
}

const cache = new WeakMap<WebAssembly.Memory, SimdKernels | null>();

/** The backend's WebAssembly.Memory (threaded build: Module.wasmMemory; plain: asm.memory). */
export function backendMemory(backend: tf.KernelBackend): WebAssembly.Memory | null {
  const w = (backend as unknown as { wasm?: { wasmMemory?: WebAssembly.Memory; asm?: { memory?: WebAssembly.Memory } } }).wasm;
  const m = w?.wasmMemory ?? w?.asm?.memory;
  return m instanceof WebAssembly.Memory ? m : null;
}

/** SIMD kernels bound to a wasm backend's memory, or null (no SIMD, or not wasm). */
export function simdFor(backend: tf.KernelBackend): SimdKernels | null {
  const memory = backendMemory(backend);
  if (!memory) return null;
  if (cache.has(memory)) return cache.get(memory)!;
  let kernels: SimdKernels | null = null;
  try {
    const shared = typeof SharedArrayBuffer === 'function' && memory.buffer instanceof SharedArrayBuffer;
    const mod = new WebAssembly.Module(moduleBytes(shared));
    const inst = new WebAssembly.Instance(mod, { env: { memory } });
    type Fma = SimdKernels['fmaStrided'];
    const e = inst.exports as unknown as { act_mask_sum: SimdKernels['actMaskSum']; fma_strided: Fma; fma_strided2: Fma; row_sum: (x: number, sums: number, rows: number, c4: number, u0: number, u1: number) => void; adam: SimdKernels['adam']; transpose4: (src: number, dst: number, rows4: number, cols4: number, ss: number, ds: number) => void };
    // The two-vector unrolled variants halve the loop overhead when the width allows.
    kernels = {
      actMaskSum: e.act_mask_sum,
      fmaStrided: (t, x, d, c4, count, ts, xs, ds) => (c4 % 2 === 0 ? e.fma_strided2 : e.fma_strided)(t, x, d, c4, count, ts, xs, ds),
      rowSum: (x, sums, rows, c4) => e.row_sum(x, sums, rows, c4, 0, 0),
      adam: e.adam,
      transpose: (src, dst, rows, cols) => e.transpose4(src, dst, rows / 4, cols / 4, 4 * cols, 4 * rows),
      module: mod,
    };
  } catch {
    kernels = null; // no wasm SIMD here: callers use their JS loops
  }
  cache.set(memory, kernels);
  return kernels;
}

/** Byte offset of a tensor's data in the wasm heap. */
export function heapOffset(backend: tf.KernelBackend, t: { dataId: object }): number {
  return (backend as unknown as { dataIdMap: { get(id: object): { memoryOffset: number } } }).dataIdMap.get(t.dataId).memoryOffset;
}
