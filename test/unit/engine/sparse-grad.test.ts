import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../src/main/engine/backend';
import { BackendIO, type TensorInfo } from '../../../src/main/engine/kernels/backend-io';
import { maskedShare, noteMaskedShare, SPARSE_MAX_SHARE, sparseFilterGradT, sparseInputGrad } from '../../../src/main/engine/kernels/sparse-grad';
import { convBnAct } from '../../../src/main/engine/kernels/fused-unit';
import { gemmFor, gemmThreadCount, setGemmThreads } from '../../../src/main/engine/kernels/gemm-simd';
import type { ConvPart } from '../../../src/main/engine/net/compile';

before(async () => {
  await initBackend({ prefer: 'wasm' });
});

const info = (t: tf.Tensor): TensorInfo => ({ dataId: t.dataId, shape: t.shape, dtype: t.dtype });

function rand(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648 - 0.5;
  });
}

/** dz [m, n] with about `share` non-zeros, an all-zero row and an all-zero column. */
function sparseDz(m: number, n: number, share: number, seed: number): Float32Array {
  const v = rand(m * n, seed);
  const keep = rand(m * n, seed + 1);
  for (let i = 0; i < v.length; i++) if (keep[i] + 0.5 >= share || Math.floor(i / n) === 1 || i % n === n - 1) v[i] = 0;
  return v;
}

function close(got: Float32Array, want: Float64Array, label: string): void {
  let scale = 1e-6;
  for (const w of want) scale = Math.max(scale, Math.abs(w));
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= 1e-5 * scale, `${label}: element ${i} is ${got[i]}, expected ${want[i]}`);
}

for (const [m, n, cin] of [[37, 20, 36], [50, 1280, 112], [9, 8, 4], [16, 12, 68]] as const) {
  test(`sparse 1x1 conv gradients [${m}, ${n}] x ${cin} match float64 matmuls (empty rows and columns, every block width)`, () => {
    const io = new BackendIO(tf.backend(), 'wasm');
    const dzv = sparseDz(m, n, 0.2, m + n);
    const x = tf.tensor2d(rand(m * cin, 3), [m, cin]);
    const wt = tf.tensor2d(rand(n * cin, 4), [n, cin]);
    const dz = tf.tensor2d(dzv, [m, n]);
    noteMaskedShare(dz.dataId, 0.2);
    const dx = sparseInputGrad(io, info(dz), info(wt), m, n, cin);
    const dwt = sparseFilterGradT(io, info(x), info(dz), m, n, cin);
    assert.ok(dx && dwt, 'the sparse path applies');
    const [xv, wv] = [x.dataSync(), wt.dataSync()];
    const wantDx = new Float64Array(m * cin);
    const wantDwt = new Float64Array(n * cin);
    for (let p = 0; p < m; p++) {
      for (let c = 0; c < n; c++) {
        const d = dzv[p * n + c];
        for (let i = 0; i < cin; i++) {
          wantDx[p * cin + i] += d * wv[c * cin + i];
          wantDwt[c * cin + i] += d * xv[p * cin + i];
        }
      }
    }
    close(io.view(dx!), wantDx, 'dx');
    close(io.view(dwt!), wantDwt, 'dW^T');
    io.dispose(dx!);
    io.dispose(dwt!);
    tf.dispose([x, wt, dz]);
  });
}

test('the sparse path declines dense or unmarked gradients and widths not in fours, and then computes nothing', () => {
  const io = new BackendIO(tf.backend(), 'wasm');
  const [m, n, cin] = [20, 16, 8];
  const x = tf.tensor2d(rand(m * cin, 5), [m, cin]);
  const wt = tf.tensor2d(rand(n * cin, 6), [n, cin]);
  const unmarked = tf.tensor2d(sparseDz(m, n, 0.1, 7), [m, n]);
  assert.equal(sparseInputGrad(io, info(unmarked), info(wt), m, n, cin), null);
  const dense = tf.tensor2d(rand(m * n, 8), [m, n]);
  noteMaskedShare(dense.dataId, SPARSE_MAX_SHARE + 0.1);
  assert.equal(sparseFilterGradT(io, info(x), info(dense), m, n, cin), null);
  // Marked sparse but really dense (the share is only a hint): the compression gives up.
  const lying = tf.tensor2d(rand(m * n, 9), [m, n]);
  noteMaskedShare(lying.dataId, 0.05);
  assert.equal(sparseInputGrad(io, info(lying), info(wt), m, n, cin), null);
  assert.equal(sparseFilterGradT(io, info(x), info(lying), m, n, cin), null);
  const odd = tf.tensor2d(sparseDz(m, 10, 0.1, 10), [m, 10]);
  noteMaskedShare(odd.dataId, 0.1);
  assert.equal(sparseInputGrad(io, info(odd), info(tf.zeros([10, cin])), m, 10, cin), null);
  tf.dispose([x, wt, unmarked, dense, lying, odd]);
});

test('a fused 1x1 conv + ReLU6 with mostly masked outputs records its share and has the gradients of the unfused ops', () => {
  const c: ConvPart = { layer: 'u', depthwise: false, strides: [1, 1], pad: 'valid', dilations: [1, 1], kernel: 'u/k', kernelShape: [] };
  const xv = tf.variable(tf.randomNormal([4, 7, 7, 24], 0, 1, 'float32', 1));
  const fv = tf.variable(tf.randomNormal([1, 1, 24, 64], 0, 1, 'float32', 2));
  const bv = tf.variable(tf.randomNormal([64], -6, 2, 'float32', 3)); // most pre-activations below 0
  const r = tf.randomNormal([4, 7, 7, 64], 0, 1, 'float32', 4);
  let share: number | undefined;
  const fused = () => {
    const y = convBnAct(tf.mul(xv, 1) as tf.Tensor4D, fv as tf.Tensor4D, bv as tf.Tensor1D, c, 'relu6');
    return tf.sum(tf.mul(y, r)) as tf.Scalar;
  };
  const spy = tf.engine().runKernel.bind(tf.engine());
  const orig = tf.engine().runKernel;
  tf.engine().runKernel = ((name: string, inputs: Record<string, tf.Tensor>, attrs: object) => {
    if (name === 'Conv2DBackpropInput') share = maskedShare(inputs.dy.dataId);
    return spy(name, inputs as never, attrs as never);
  }) as typeof orig;
  let a: ReturnType<typeof tf.variableGrads>;
  try {
    a = tf.variableGrads(fused, [xv, fv, bv]);
  } finally {
    tf.engine().runKernel = orig;
  }
  assert.ok(share !== undefined && share < SPARSE_MAX_SHARE, `share of unmasked outputs ${share} is recorded and low`);
  const b = tf.variableGrads(() => tf.sum(tf.mul(tf.relu6(tf.add(tf.conv2d(tf.mul(xv, 1) as tf.Tensor4D, fv as tf.Tensor4D, 1, 'valid'), bv)), r)) as tf.Scalar, [xv, fv, bv]);
  for (const v of [xv, fv, bv]) {
    const [got, want] = [a.grads[v.name].dataSync(), b.grads[v.name].dataSync()];
    let scale = 1e-6;
    for (const w of want) scale = Math.max(scale, Math.abs(w));
    for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= 1e-4 * scale, `grad of ${v.name}: element ${i} is ${got[i]}, expected ${want[i]}`);
  }
  tf.dispose([xv, fv, bv, r, a.value, b.value, ...Object.values(a.grads), ...Object.values(b.grads)]);
});

test('the sparse input gradient shared with the helper thread (two threads) is bit-identical to one thread', (t) => {
  const io = new BackendIO(tf.backend(), 'wasm');
  if (!gemmFor(tf.backend())?.helper()) return t.skip('single-threaded wasm memory: no helper thread');
  const [m, n, cin] = [50, 1280, 112];
  const dz = tf.tensor2d(sparseDz(m, n, 0.2, 7), [m, n]);
  const wt = tf.tensor2d(rand(n * cin, 8), [n, cin]);
  noteMaskedShare(dz.dataId, 0.2);
  const before = gemmThreadCount();
  const run = (threads: number) => {
    setGemmThreads(threads);
    const dx = sparseInputGrad(io, info(dz), info(wt), m, n, cin)!;
    const out = io.view(dx).slice();
    io.dispose(dx);
    return out;
  };
  try {
    assert.deepEqual(run(2), run(1));
  } finally {
    setGemmThreads(before);
  }
  tf.dispose([dz, wt]);
});

test('the sparse filter gradient split by output rows over two threads is bit-identical to one thread', (t) => {
  const io = new BackendIO(tf.backend(), 'wasm');
  if (!gemmFor(tf.backend())?.helper()) return t.skip('single-threaded wasm memory: no helper thread');
  // The shape of MobileNetV2's last conv at batch 16, and a small odd one; the low columns
  // denser than the rest, so the balanced split is not simply the middle.
  for (const [m, n, cin] of [[784, 1280, 112], [61, 100, 36]] as const) {
    const v = sparseDz(m, n, 0.15, 11);
    const extra = rand(m * n, 12);
    for (let i = 0; i < v.length; i++) if (i % n < n / 5 && extra[i] > 0.2) v[i] = extra[i];
    const dz = tf.tensor2d(v, [m, n]);
    const x = tf.tensor2d(rand(m * cin, 13), [m, cin]);
    noteMaskedShare(dz.dataId, 0.25);
    const before = gemmThreadCount();
    const run = (threads: number) => {
      setGemmThreads(threads);
      const dwt = sparseFilterGradT(io, info(x), info(dz), m, n, cin);
      assert.ok(dwt, `[${m}, ${n}] x ${cin} takes the sparse path`);
      const out = io.view(dwt).slice();
      io.dispose(dwt);
      return out;
    };
    try {
      const [one, two] = [run(1), run(2)];
      assert.deepEqual(two, one, `[${m}, ${n}] x ${cin}`);
      // and both are the product: dW^T = dz^T x
      const [d, xs] = [dz.dataSync(), x.dataSync()];
      const want = new Float64Array(n * cin);
      for (let p = 0; p < m; p++) for (let c = 0; c < n; c++) if (d[p * n + c]) for (let j = 0; j < cin; j++) want[c * cin + j] += d[p * n + c] * xs[p * cin + j];
      close(one, want, `[${m}, ${n}] x ${cin}`);
    } finally {
      setGemmThreads(before);
    }
    tf.dispose([dz, x]);
  }
});
