import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../src/main/engine/backend';
import { BackendIO } from '../../../src/main/engine/kernels/backend-io';
import { gemm, gemmFor, MR, relaxedSimd, setGemmThreads } from '../../../src/main/engine/kernels/gemm-simd';

before(async () => {
  await initBackend({ prefer: 'wasm' });
});

function rand(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648 - 0.5;
  });
}

/** C = A B in float64 from A's (i, k) accessor. */
function naive(aAt: (i: number, k: number) => number, b: Float32Array, m: number, n: number, k: number, c0?: Float32Array): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = c0 ? c0[i * n + j] : 0;
      for (let t = 0; t < k; t++) s += aAt(i, t) * b[t * n + j];
      c[i * n + j] = s;
    }
  }
  return c;
}

for (const relaxed of [false, true]) {
  test(`gemm (${relaxed ? 'relaxed SIMD FMA' : 'multiply + add'}) matches a float64 matmul for both layouts of A, every remainder and accumulation`, (t) => {
    if (relaxed && !relaxedSimd()) return t.skip('no relaxed SIMD in this engine');
    const backend = tf.backend();
    const io = new BackendIO(backend, tf.getBackend());
    const g = gemmFor(backend, relaxed);
    assert.ok(g, 'wasm SIMD GEMM available');
    let seed = 1;
    for (const m of [1, MR - 1, MR, 2 * MR + 1, 37]) {
      for (const n of [4, 8, 12, 20, 64]) {
        for (const k of [1, 3, 56, 130]) {
          for (const layout of ['rows', 'cols'] as const) {
            for (const accumulate of [false, true]) {
              const a = rand(m * k, seed++);
              const b = rand(k * n, seed++);
              const c0 = rand(m * n, seed++);
              const A = io.fromArray([m * k], a);
              const B = io.fromArray([k * n], b);
              const C = io.fromArray([m * n], c0);
              // rows: A stored [m, k]; cols: A stored [k, m] (the transposed operand read in place).
              const [rs, cs] = layout === 'rows' ? [k, 1] : [1, m];
              assert.ok(gemm(io, g, { a: A, aRowStride: rs, aColStride: cs, b: B, ldb: n, c: C, ldc: n, m, n, k, accumulate }));
              const got = io.view(C);
              const want = naive((i, t) => a[i * rs + t * cs], b, m, n, k, accumulate ? c0 : undefined);
              let worst = 0;
              for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
              assert.ok(worst < 1e-4 * Math.max(1, Math.sqrt(k)), `m=${m} n=${n} k=${k} ${layout} acc=${accumulate}: max error ${worst}`);
              [A, B, C].forEach((x) => io.dispose(x));
            }
          }
        }
      }
    }
  });
}

test('gemm fuses a bias row and a clamp (ReLU6) into the store, across K chunks', () => {
  const backend = tf.backend();
  const io = new BackendIO(backend, tf.getBackend());
  const g = gemmFor(backend)!;
  for (const [m, n, k] of [[13, 20, 5], [9, 36, 300], [784, 64, 112]]) {
    const a = rand(m * k, m + n);
    const b = rand(k * n, k);
    const bias = rand(n, n).map((v) => v * 4);
    const A = io.fromArray([m * k], a);
    const B = io.fromArray([k * n], b);
    const BIAS = io.fromArray([n], bias);
    const C = io.alloc([m * n]);
    gemm(io, g, { a: A, aRowStride: k, aColStride: 1, b: B, ldb: n, c: C, ldc: n, m, n, k, bias: BIAS, lo: 0, hi: 0.5 });
    const want = naive((i, t) => a[i * k + t], b, m, n, k).map((v, i) => Math.min(0.5, Math.max(0, v + bias[i % n])));
    const got = io.view(C);
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
    assert.ok(worst < 1e-4, `m=${m} n=${n} k=${k}: max error ${worst}`);
    assert.ok(got.some((v) => v === 0) && got.some((v) => v === 0.5), 'both clamp bounds were hit');
    [A, B, BIAS, C].forEach((x) => io.dispose(x));
  }
});

test('gemm split over two threads gives bit-identical results (rows split and columns split)', (t) => {
  const backend = tf.backend();
  const io = new BackendIO(backend, tf.getBackend());
  const g = gemmFor(backend)!;
  if (!g.helper()) return t.skip('single-threaded wasm memory: no helper thread');
  for (const [m, n, k, layout] of [[784, 56, 336, 'rows'], [112, 1280, 784, 'cols'], [50, 1000, 300, 'rows']] as const) {
    const A = io.fromArray([m * k], rand(m * k, m));
    const B = io.fromArray([k * n], rand(k * n, n));
    const bias = io.fromArray([n], rand(n, k));
    const [rs, cs] = layout === 'rows' ? [k, 1] : [1, m];
    const run = (threads: number) => {
      setGemmThreads(threads);
      const C = io.alloc([m * n]);
      gemm(io, g, { a: A, aRowStride: rs, aColStride: cs, b: B, ldb: n, c: C, ldc: n, m, n, k, bias, lo: 0, hi: 6 });
      const out = io.view(C).slice();
      io.dispose(C);
      return out;
    };
    try {
      assert.deepEqual(run(2), run(1), `m=${m} n=${n} k=${k}`);
    } finally {
      setGemmThreads(1);
    }
    [A, B, bias].forEach((x) => io.dispose(x));
  }
});

test('gemm refuses N not divisible by 4 without touching C', () => {
  const backend = tf.backend();
  const io = new BackendIO(backend, tf.getBackend());
  const g = gemmFor(backend)!;
  const C = io.fromArray([6], new Float32Array(6).fill(7));
  const A = io.fromArray([2], new Float32Array([1, 2]));
  const B = io.fromArray([3], new Float32Array([1, 2, 3]));
  assert.equal(gemm(io, g, { a: A, aRowStride: 1, aColStride: 2, b: B, ldb: 3, c: C, ldc: 3, m: 2, n: 3, k: 1 }), false);
  assert.deepEqual([...io.view(C)], [7, 7, 7, 7, 7, 7]);
});
