/**
 * A few WebAssembly encoding helpers for our hand-assembled SIMD kernels (no toolchain is
 * needed: modules are encoded from opcodes). Pointers in the kernels are byte offsets into
 * tfjs-backend-wasm's own memory, which every module imports.
 */
export const I32 = 0x7f;
export const F32 = 0x7d;
export const V128 = 0x7b;

export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) return [...out, b];
    out.push(b | 0x80);
  }
}

export const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
export const str = (s: string) => vec([...Buffer.from(s)].map((b) => [b]));
export const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];

// Instructions.
export const get = (i: number) => [0x20, ...uleb(i)];
export const set = (i: number) => [0x21, ...uleb(i)];
export const tee = (i: number) => [0x22, ...uleb(i)];
export const i32 = (v: number) => [0x41, ...sleb(v)];
export const add = [0x6a];
export const sub = [0x6b];
export const mul = [0x6c];
export const and = [0x71];
export const shrU = [0x76];
export const eq = [0x46];
export const eqz = [0x45];
export const call = (f: number) => [0x10, ...uleb(f)];
export const simd = (op: number) => [0xfd, ...uleb(op)];
export const vload = [...simd(0x00), 0, 0];
export const vstore = [...simd(0x0b), 0, 0];
export const vloadAt = (offset: number) => [...simd(0x00), 0, ...uleb(offset)];
export const vstoreAt = (offset: number) => [...simd(0x0b), 0, ...uleb(offset)];
/** v128.load32_splat at a constant byte offset from the address on the stack. */
export const vloadSplatAt = (offset: number) => [...simd(0x09), 2, ...uleb(offset)];
export const f32loadAt = (offset: number) => [0x2a, 2, ...uleb(offset)];
export const f32storeAt = (offset: number) => [0x38, 2, ...uleb(offset)];
/** v128.store32_lane: lane `lane` of the vector on the stack, at a constant byte offset. */
export const vstoreLaneAt = (offset: number, lane: number) => [...simd(0x5a), 2, ...uleb(offset), lane];
export const vzero = [...simd(0x0c), ...new Array(16).fill(0)];
export const splat = simd(0x13);
export const fgt = simd(0x44);
export const flt = simd(0x43);
export const vand = simd(0x4e);
export const fadd = simd(0xe4);
export const fmul = simd(0xe6);
/** Pseudo-min/max (b < a ? b : a; a < b ? b : a): one instruction each on x86. */
export const fpmin = simd(0xea);
export const fpmax = simd(0xeb);
/** f32x4.relaxed_madd (a * b + c; fused on CPUs with FMA): relaxed SIMD. */
export const fmadd = simd(0x105);
export const bump = (p: number, bytes: number[]) => [...get(p), ...bytes, ...add, ...set(p)];
/** while (local[counter] != 0) { body; counter-- } */
export const countdown = (counter: number, body: number[]) => [0x02, 0x40, 0x03, 0x40, ...get(counter), ...eqz, 0x0d, 1, ...body, ...get(counter), ...i32(1), ...sub, ...set(counter), 0x0c, 0, 0x0b, 0x0b];
/** if (stack top != 0) { then } else { otherwise } */
export const ifElse = (then: number[], otherwise: number[]) => [0x04, 0x40, ...then, 0x05, ...otherwise, 0x0b];

/** A function body with its locals: `locals` as [count, type] pairs. */
export function code(locals: number[][], body: number[]): number[] {
  const fn = [...vec(locals), ...body, 0x0b];
  return [...uleb(fn.length), ...fn];
}

/** A module importing env.memory (shared when the backend's memory is shared). */
export function moduleBytes(shared: boolean, types: number[][], funcTypes: number[], exports: [string, number][], codes: number[][]): Uint8Array<ArrayBuffer> {
  const limits = shared ? [0x03, ...uleb(0), ...uleb(65536)] : [0x00, ...uleb(0)];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...section(2, vec([[...str('env'), ...str('memory'), 0x02, ...limits]])),
    ...section(3, vec(funcTypes.map((t) => [t]))),
    ...section(7, vec(exports.map(([name, f]) => [...str(name), 0x00, ...uleb(f)]))),
    ...section(10, vec(codes)),
  ]) as Uint8Array<ArrayBuffer>;
}

/** A function type of `params` and no results. */
export const fnType = (params: number[]) => [0x60, ...vec(params.map((p) => [p])), ...vec([])];
