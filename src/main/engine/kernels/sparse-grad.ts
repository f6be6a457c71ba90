/**
 * Gradients of a 1x1 conv through a ReLU/ReLU6 mask, computed from the non-zeros only.
 * Behind a ReLU6 much of a layer's dz is exactly zero: in MobileNetV2's last conv (1280
 * channels at 7x7) about 90% of the outputs sit at 0 or 6 on real photos, so 90% of the
 * multiply-adds of its two gradient GEMMs multiply by zero. dz is compressed once (row by
 * row, SIMD left-packing: column indices and values), then
 * - input gradient (gather): dx[p, :] = the sum over the non-zeros dz[p, c] of
 *   dz[p, c] * W^T[c, :], accumulated in registers;
 * - filter gradient (scatter): dW^T[c, :] += dz[p, c] * x[p, :] for each non-zero, with
 *   x's row held in registers (no regrouping by column).
 * The activation-gradient kernel records each dz's share of non-zeros (noteMaskedShare);
 * the conv gradients take this path when it is at most SPARSE_MAX_SHARE, and
 * FINETUNE_SPARSE_GRADS=0 turns it off. Hand-assembled wasm SIMD on the backend's memory,
 * like gemm-simd.ts.
 */
import type * as tf from '@tensorflow/tfjs';
import type { BackendIO, TensorInfo } from './backend-io';
import { LIST_CALL, helperThread, relaxedSimd, type GemmHelper } from './gemm-simd';
import { backendMemory, heapOffset } from './simd';
import { I32, V128, add, bump, code, countdown, fadd, fmadd, fmul, get, i32, ifElse, moduleBytes, mul, set, simd, uleb, vloadAt, vloadSplatAt, vstoreAt, vzero } from './wasm-asm';

/**
 * Up to this share of non-zeros the sparse path is used. Measured on one thread at
 * [784, 1280] x 112: 2x faster than the GEMM at 0.3, 4-5x at 0.1 (bench/sparse-grads.ts).
 */
export const SPARSE_MAX_SHARE = 0.3;

/** Output vectors (4 floats) held in registers per pass over a row's non-zeros (more would spill). */
const W_MAX = 8;

const dzShare = new WeakMap<object, number>();

/** Record that the tensor with this dataId is a masked gradient with this share of non-zeros. */
export function noteMaskedShare(dataId: object, share: number): void {
  dzShare.set(dataId, share);
}

/** The recorded share of non-zeros of a masked gradient (undefined: unknown, treat as dense). */
export function maskedShare(dataId: object): number | undefined {
  return dzShare.get(dataId);
}

const i32load = (offset: number) => [0x28, 2, ...uleb(offset)];
const i32store = (offset: number) => [0x36, 2, ...uleb(offset)];
const [iadd4, bitmask4, swizzle, vne] = [simd(0xae), simd(0xa4), simd(0x0e), simd(0x42)];
const [shl, popcnt, geU, gtU, ret] = [0x74, 0x69, 0x4f, 0x4b, 0x0f];

/** while (local[p] < local[end]) { body } */
const whileBelow = (p: number, end: number, body: number[]) => [0x02, 0x40, 0x03, 0x40, ...get(p), ...get(end), geU, 0x0d, 1, ...body, 0x0c, 0, 0x0b, 0x0b];

/**
 * The left-pack table: for each 4-bit lane mask, the byte shuffle that moves the masked
 * lanes of a vector to its front, in order (i8x16.swizzle indices; 0x80 gives 0).
 */
function leftPackTable(): Uint8Array {
  const t = new Uint8Array(256).fill(0x80);
  for (let m = 0; m < 16; m++) {
    let o = 0;
    for (let l = 0; l < 4; l++) {
      if (!(m & (1 << l))) continue;
      for (let b = 0; b < 4; b++) t[m * 16 + 4 * o + b] = 4 * l + b;
      o++;
    }
  }
  return t;
}

/**
 * compress(dz, rows, c4, ends, idx, delta, limit, table) -> end of idx (bytes), or 0 when
 * a row ends past `limit`: the non-zeros of the [rows, 4 c4] matrix row by row, column
 * indices from `idx` on and their values `delta` bytes further; ends[r] = the byte address
 * just past row r's indices. Branch-free SIMD left-packing: per vector, the non-zero lanes'
 * mask picks a shuffle from `table` (leftPackTable), 16 bytes are stored and the pointers
 * advance by the non-zero count.
 */
function compressBody(): number[] {
  // params 0 dz, 1 rows, 2 c4, 3 ends, 4 p, 5 delta, 6 limit, 7 table; locals 8 k, 9 m (i32), 10 cols, 11 four, 12 v, 13 sh (v128)
  const [K, M, COLS, FOUR, V, SH] = [8, 9, 10, 11, 12, 13];
  const vector = [
    ...get(0), ...vloadAt(0), 0x22, ...uleb(V), ...vzero, ...vne, ...bitmask4, ...set(M),
    ...get(7), ...get(M), ...i32(4), shl, ...add, ...vloadAt(0), ...set(SH),
    ...get(4), ...get(5), ...add, ...get(V), ...get(SH), ...swizzle, ...vstoreAt(0),
    ...get(4), ...get(COLS), ...get(SH), ...swizzle, ...vstoreAt(0),
    ...bump(4, [...get(M), popcnt, ...i32(2), shl]),
    ...get(COLS), ...get(FOUR), ...iadd4, ...set(COLS),
    ...bump(0, i32(16)),
  ];
  const iota = [...simd(0x0c), 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0];
  const row = [
    ...iota, ...set(COLS), ...get(2), ...set(K), ...countdown(K, vector),
    ...get(3), ...get(4), ...i32store(0), ...bump(3, i32(4)),
    ...get(4), ...get(6), gtU, ...ifElse([...i32(0), ret], []),
  ];
  return [...i32(4), ...simd(0x11) /* i32x4.splat */, ...set(FOUR), ...countdown(1, row), ...get(4)];
}

/**
 * gather_w(out, ostride, rows, ends, idx, delta, src, scale): for each of `rows` rows, w
 * vectors of out = the sum over the row's non-zeros (index, value) of value * src[index *
 * scale ..] (bytes); a row's indices run up to ends[r], values `delta` bytes after them.
 * `src` and `out` already point at the block of vectors to do.
 */
function gatherBody(w: number, relaxed: boolean): number[] {
  // params 0 out, 1 ostride, 2 rows, 3 ends, 4 p, 5 delta, 6 src, 7 scale; locals 8 end, 9 a (i32), 10 s, 11.. acc (v128)
  const [END, A, S] = [8, 9, 10];
  const ACC = (j: number) => 11 + j;
  const body: number[] = [...get(6), ...get(4), ...i32load(0), ...get(7), ...mul, ...add, ...set(A), ...get(4), ...get(5), ...add, ...vloadSplatAt(0), ...set(S)];
  for (let j = 0; j < w; j++) {
    body.push(...(relaxed ? [...get(A), ...vloadAt(16 * j), ...get(S), ...get(ACC(j)), ...fmadd] : [...get(A), ...vloadAt(16 * j), ...get(S), ...fmul, ...get(ACC(j)), ...fadd]), ...set(ACC(j)));
  }
  body.push(...bump(4, i32(4)));
  const zero: number[] = [];
  const store: number[] = [];
  for (let j = 0; j < w; j++) {
    zero.push(...vzero, ...set(ACC(j)));
    store.push(...get(0), ...get(ACC(j)), ...vstoreAt(16 * j));
  }
  const row = [...get(3), ...i32load(0), ...set(END), ...bump(3, i32(4)), ...zero, ...whileBelow(4, END, body), ...store, ...bump(0, get(1))];
  return countdown(2, row);
}

/**
 * scatter_w(out, ostride, rows, ends, idx, delta, src, sstride): for each of `rows` rows r of
 * src (sstride bytes apart), w vectors of it are loaded once, then for each of the row's
 * non-zeros (index, value): out[index * ostride ..] += value * src[r ..] (w vectors). The
 * transpose of gather: dW^T = dz^T x without regrouping dz by column.
 */
function scatterBody(w: number, relaxed: boolean, paired = false): number[] {
  // params 0 out, 1 ostride, 2 rows, 3 ends, 4 p, 5 delta, 6 src, 7 sstride; locals 8 end, 9 a (i32), 10 s, 11.. x (v128)
  const [END, A, S] = [8, 9, 10];
  const X = (j: number) => 11 + j;
  const body: number[] = [...get(0), ...get(4), ...i32load(0), ...get(1), ...mul, ...add, ...set(A), ...get(4), ...get(5), ...add, ...vloadSplatAt(0), ...set(S)];
  for (let j = 0; j < w; j++) {
    body.push(...get(A), ...(relaxed ? [...get(X(j)), ...get(S), ...get(A), ...vloadAt(16 * j), ...fmadd] : [...get(X(j)), ...get(S), ...fmul, ...get(A), ...vloadAt(16 * j), ...fadd]), ...vstoreAt(16 * j));
  }
  body.push(...bump(4, i32(4)));
  const load: number[] = [];
  for (let j = 0; j < w; j++) load.push(...get(6), ...vloadAt(16 * j), ...set(X(j)));
  // Paired: `ends` holds (start, end) byte addresses per row, so a row's run may be any part of it.
  const bounds = paired ? [...get(3), ...i32load(0), ...set(4), ...get(3), ...i32load(4), ...set(END), ...bump(3, i32(8))] : [...get(3), ...i32load(0), ...set(END), ...bump(3, i32(4))];
  const row = [...bounds, ...load, ...whileBelow(4, END, body), ...bump(6, get(7))];
  return countdown(2, row);
}

function sparseModule(shared: boolean, relaxed: boolean): Uint8Array<ArrayBuffer> {
  const ints = (n: number) => new Array(n).fill(I32);
  const types = [[0x60, 8, ...ints(8), 1, I32], [0x60, 8, ...ints(8), 0]];
  const codes = [code([[2, I32], [4, V128]], compressBody())];
  for (let w = 1; w <= W_MAX; w++) codes.push(code([[2, I32], [1 + w, V128]], gatherBody(w, relaxed)));
  for (let w = 1; w <= W_MAX; w++) codes.push(code([[2, I32], [1 + w, V128]], scatterBody(w, relaxed)));
  for (let w = 1; w <= W_MAX; w++) codes.push(code([[2, I32], [1 + w, V128]], scatterBody(w, relaxed, true)));
  const kinds = ['gather', 'scatter', 'scatterPairs'];
  const exports: [string, number][] = [['compress', 0], ...Array.from({ length: 3 * W_MAX }, (_, i): [string, number] => [`${kinds[Math.floor(i / W_MAX)]}${(i % W_MAX) + 1}`, i + 1])];
  return moduleBytes(shared, types, [0, ...new Array(3 * W_MAX).fill(1)], exports, codes);
}

type GatherFn = (out: number, ostride: number, rows: number, ends: number, idx: number, delta: number, src: number, scale: number) => void;

interface SparseKernels {
  compress(dz: number, rows: number, c4: number, ends: number, idx: number, delta: number, limit: number, table: number): number;
  gather: GatherFn[];
  scatter: GatherFn[];
  /** scatter with (start, end) per row in place of `ends` (see scatterBody). */
  scatterPairs: GatherFn[];
  /** The left-pack table's byte offset. */
  table: number;
  /** Scratch kept between calls: byte offset of at least `floats` floats, by slot. */
  scratch(slot: number, floats: number): number;
  /** The compiled module (exports gather1.., scatter1..), for the helper thread's own instance. */
  module: WebAssembly.Module;
}

/** Scratch slots: the left-pack table, rows' ends, the compressed rows, the two threads' (start, end) pairs. */
const [TABLE, ROW_ENDS, ROWS, PAIRS] = [0, 1, 2, 3];

const modules = new WeakMap<WebAssembly.Memory, SparseKernels | null>();

function sparseFor(io: BackendIO): SparseKernels | null {
  const memory = backendMemory(io.backend);
  if (!memory) return null;
  if (modules.has(memory)) return modules.get(memory)!;
  let k: SparseKernels | null = null;
  try {
    const shared = typeof SharedArrayBuffer === 'function' && memory.buffer instanceof SharedArrayBuffer;
    const module = new WebAssembly.Module(sparseModule(shared, relaxedSimd()));
    const e = new WebAssembly.Instance(module, { env: { memory } }).exports as Record<string, unknown>;
    const slots: ({ info: TensorInfo; floats: number } | null)[] = [];
    const scratch = (slot: number, floats: number) => {
      const s = slots[slot];
      if (!s || s.floats < floats) {
        if (s) io.dispose(s.info);
        slots[slot] = { info: io.alloc([floats]), floats };
      }
      return heapOffset(io.backend, slots[slot]!.info);
    };
    const table = scratch(TABLE, 64);
    new Uint8Array(memory.buffer, table, 256).set(leftPackTable());
    k = {
      compress: e.compress as SparseKernels['compress'],
      gather: Array.from({ length: W_MAX }, (_, i) => e[`gather${i + 1}`] as GatherFn),
      scatter: Array.from({ length: W_MAX }, (_, i) => e[`scatter${i + 1}`] as GatherFn),
      scatterPairs: Array.from({ length: W_MAX }, (_, i) => e[`scatterPairs${i + 1}`] as GatherFn),
      table,
      scratch,
      module,
    };
  } catch {
    k = null;
  }
  modules.set(memory, k);
  return k;
}

/** Non-zeros: indices from `idx` on, values `delta` bytes further, runs ending at ends[row] (bytes). */
interface Runs {
  ends: number;
  idx: number;
  delta: number;
}

/** dz [m, n] compressed by rows (column indices). */
interface Compressed extends Runs {
  dataId: object;
  m: number;
  n: number;
}

let last: Compressed | null = null;

/**
 * dz's non-zeros, row by row (one compression serves the input and the filter gradient of
 * the same dz); null when there are more than SPARSE_MAX_SHARE after all.
 */
function compressed(k: SparseKernels, dz: TensorInfo, dzAt: number, m: number, n: number): Compressed | null {
  if (last && last.dataId === dz.dataId && last.m === m && last.n === n) return last;
  last = null;
  const limit = Math.ceil(SPARSE_MAX_SHARE * m * n);
  const capacity = limit + n + 4; // a row may start just below the limit; 16-byte stores overrun by 3
  const ends = k.scratch(ROW_ENDS, m);
  const idx = k.scratch(ROWS, 2 * capacity);
  const end = k.compress(dzAt, m, n / 4, ends, idx, 4 * capacity, idx + 4 * limit, k.table);
  if (end) last = { dataId: dz.dataId, m, n, ends, idx, delta: 4 * capacity };
  return last;
}

type Call = [width: number, args: Parameters<GatherFn>];

/**
 * Rows of 4 k4 floats in balanced blocks of at most W_MAX vectors (28 as 4 x 7), as calls of
 * gather or scatter (the function for `width` vectors): gather, out row = sum of value *
 * src[index] over the row's non-zeros; scatter, out[index] += value * src row.
 */
function blockCalls(out: number, rows: number, k4: number, r: Runs, src: number): Call[] {
  const width = Math.ceil(k4 / Math.ceil(k4 / W_MAX));
  const calls: Call[] = [];
  for (let v0 = 0; v0 < k4; v0 += width) calls.push([Math.min(width, k4 - v0), [out + 16 * v0, 16 * k4, rows, r.ends, r.idx, r.delta, src + 16 * v0, 16 * k4]]);
  return calls;
}

/** A gather's blocks write disjoint columns: with two threads the helper takes the second half of them (the same calls, so the same result). */
function gather(io: BackendIO, k: SparseKernels, calls: Call[]): void {
  const helper = calls.length > 1 ? helperThread(io.backend) : null;
  const mine = helper ? Math.ceil(calls.length / 2) : calls.length;
  const here = () => {
    for (const [w, args] of calls.slice(0, mine)) k.gather[w - 1](...args);
  };
  if (helper) {
    const list: number[] = [];
    for (const [w, args] of calls.slice(mine)) list.push(LIST_CALL, helper.functionIds(k.module, [`gather${w}`])[0], args.length, ...args);
    helper.alongside(list, here);
  } else here();
}

/**
 * A scatter's blocks update the same output rows all along (split by blocks, the cache line
 * where two blocks meet went back and forth between the cores: slower than one thread), so
 * with two threads it is split by output row instead (scatterByIndex).
 */
function scatter(io: BackendIO, k: SparseKernels, calls: Call[], rows: number, r: Runs, n: number): void {
  const helper = n >= 2 * SPLIT_ALIGN ? helperThread(io.backend) : null;
  if (helper && scatterByIndex(io, k, helper, calls, rows, r, n)) return;
  for (const [w, args] of calls) k.scatter[w - 1](...args);
}

/** The two threads' output rows meet at a multiple of this (whole cache lines for any width in fours). */
const SPLIT_ALIGN = 16;

/**
 * A scatter on two threads, split by output row: this thread adds the non-zeros whose column
 * index is below a split point, the helper the rest. A row's non-zeros are stored in column
 * order, so each row's run is cut in two where its indices reach the split (a binary search),
 * and each thread gets (start, end) pairs. Every output row is updated by one thread, in the
 * same order as on one thread: the same result, bit for bit. The split balances the non-zeros
 * counted on every 8th row. False (nothing done) when those rows have no non-zeros.
 */
function scatterByIndex(io: BackendIO, k: SparseKernels, helper: GemmHelper, calls: Call[], rows: number, r: Runs, n: number): boolean {
  const pairs = k.scratch(PAIRS, 4 * rows);
  const heap = new Int32Array(backendMemory(io.backend)!.buffer);
  const startOf = (row: number) => (row ? heap[(r.ends >> 2) + row - 1] : r.idx) >> 2;
  const counts = new Int32Array(n);
  let sampled = 0;
  for (let row = 0; row < rows; row += 8) {
    const [start, end] = [startOf(row), heap[(r.ends >> 2) + row] >> 2];
    for (let p = start; p < end; p++) counts[heap[p]]++;
    sampled += end - start;
  }
  if (!sampled) return false;
  let split = 0;
  for (let acc = 0; split < n && 2 * (acc + counts[split]) <= sampled; split++) acc += counts[split];
  split = Math.min(n - SPLIT_ALIGN, Math.max(SPLIT_ALIGN, Math.round(split / SPLIT_ALIGN) * SPLIT_ALIGN));
  const mine = pairs >> 2;
  const theirs = mine + 2 * rows;
  for (let row = 0; row < rows; row++) {
    const start = startOf(row);
    const end = heap[(r.ends >> 2) + row] >> 2;
    let [lo, hi] = [start, end]; // first p in [start, end) with index >= split
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (heap[mid] < split) lo = mid + 1;
      else hi = mid;
    }
    heap[mine + 2 * row] = 4 * start;
    heap[mine + 2 * row + 1] = 4 * lo;
    heap[theirs + 2 * row] = 4 * lo;
    heap[theirs + 2 * row + 1] = 4 * end;
  }
  const list: number[] = [];
  for (const [w, args] of calls) {
    const a = [...args];
    a[3] = 4 * theirs;
    list.push(LIST_CALL, helper.functionIds(k.module, [`scatterPairs${w}`])[0], a.length, ...a);
  }
  helper.alongside(list, () => {
    for (const [w, args] of calls) {
      const a = [...args] as Parameters<GatherFn>;
      a[3] = 4 * mine;
      k.scatterPairs[w - 1](...a);
    }
  });
  return true;
}

/**
 * dx [m, cin] = dz [m, n] W^T for a 1x1 conv, from dz's non-zeros; `wt` is W^T [n, cin].
 * Null (nothing done) when this path doesn't apply: not wasm, widths not in fours, dz not
 * a sparse enough masked gradient.
 */
export function sparseInputGrad(io: BackendIO, dz: TensorInfo, wt: TensorInfo, m: number, n: number, cin: number): TensorInfo | null {
  const k = eligible(io, dz, n, cin);
  const c = k && compressed(k, dz, heapOffset(io.backend, dz), m, n);
  if (!k || !c) return null;
  const dx = io.alloc([m, cin]);
  gather(io, k, blockCalls(heapOffset(io.backend, dx), m, cin / 4, c, heapOffset(io.backend, wt)));
  return dx;
}

/** dW^T [n, cin] = dz^T x for a 1x1 conv (x [m, cin]), from dz's non-zeros; null as above. */
export function sparseFilterGradT(io: BackendIO, x: TensorInfo, dz: TensorInfo, m: number, n: number, cin: number): TensorInfo | null {
  const k = eligible(io, dz, n, cin);
  const c = k && compressed(k, dz, heapOffset(io.backend, dz), m, n);
  if (!k || !c) return null;
  const dwt = io.alloc([n, cin], true);
  scatter(io, k, blockCalls(heapOffset(io.backend, dwt), m, cin / 4, c, heapOffset(io.backend, x)), m, c, n);
  return dwt;
}

const disabled = process.env.FINETUNE_SPARSE_GRADS === '0';

function eligible(io: BackendIO, dz: TensorInfo, n: number, cin: number): SparseKernels | null {
  if (disabled || io.kind !== 'wasm' || n % 4 !== 0 || cin % 4 !== 0) return null;
  const share = maskedShare(dz.dataId);
  if (share === undefined || share > SPARSE_MAX_SHARE) return null;
  return sparseFor(io);
}
