import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../src/main/engine/backend';
import type { ConvPart } from '../../../src/main/engine/net/compile';
import { loadBackbone, type KerasBackbone } from '../../../src/main/engine/net/index';
import { convBnAct } from '../../../src/main/engine/kernels/fused-unit';
import { foldConvBnOp } from '../../../src/main/engine/kernels/fold';
import { globalAvgPool } from '../../../src/main/engine/kernels/global-pool';
import { actGradBias, runActGradBias } from '../../../src/main/engine/kernels/act-grad';
import { gemmFor, gemmThreadCount, setGemmThreads } from '../../../src/main/engine/kernels/gemm-simd';
import { hymenopteraBatch, MOBILENET_V2, PRE } from './net-helpers';

before(async () => {
  await initBackend();
});

function assertClose(a: tf.Tensor, b: tf.Tensor, label: string, rel = 1e-4): void {
  assert.deepEqual(a.shape, b.shape, `${label}: shape`);
  const x = a.dataSync();
  const y = b.dataSync();
  let scale = 1e-6;
  for (const v of y) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < x.length; i++) assert.ok(Math.abs(x[i] - y[i]) <= rel * scale, `${label}: element ${i} is ${x[i]}, expected ${y[i]} (scale ${scale})`);
}

const UNITS: { depthwise: boolean; x: [number, number, number, number]; k: number; cout: number; strides: [number, number]; pad: ConvPart['pad']; act: 'relu6' | 'relu' | 'linear' }[] = [
  { depthwise: true, x: [2, 9, 9, 6], k: 3, cout: 6, strides: [1, 1], pad: 'same', act: 'relu6' },
  { depthwise: true, x: [2, 10, 10, 5], k: 3, cout: 5, strides: [2, 2], pad: [[0, 0], [0, 1], [0, 1], [0, 0]], act: 'relu6' },
  // Channels in fours: the direct depthwise kernels (depthwise-direct.ts) on wasm.
  { depthwise: true, x: [2, 7, 7, 12], k: 3, cout: 12, strides: [1, 1], pad: 'same', act: 'relu6' },
  { depthwise: true, x: [2, 10, 9, 8], k: 3, cout: 8, strides: [2, 2], pad: [[0, 0], [0, 1], [1, 1], [0, 0]], act: 'relu' },
  { depthwise: true, x: [1, 6, 6, 4], k: 3, cout: 4, strides: [1, 1], pad: 'valid', act: 'linear' },
  { depthwise: false, x: [3, 6, 6, 7], k: 1, cout: 11, strides: [1, 1], pad: 'same', act: 'relu6' },
  { depthwise: false, x: [2, 9, 9, 3], k: 3, cout: 4, strides: [2, 2], pad: [[0, 0], [0, 1], [0, 1], [0, 0]], act: 'relu' },
  { depthwise: false, x: [2, 5, 5, 8], k: 1, cout: 3, strides: [1, 1], pad: 'valid', act: 'linear' },
  // Widths divisible by 4: on wasm these run on our GEMM with the fused bias + activation store.
  { depthwise: false, x: [3, 7, 5, 10], k: 1, cout: 12, strides: [1, 1], pad: 'same', act: 'relu6' },
  { depthwise: false, x: [2, 4, 4, 16], k: 1, cout: 20, strides: [1, 1], pad: 'valid', act: 'relu' },
  { depthwise: false, x: [2, 4, 4, 16], k: 1, cout: 8, strides: [1, 1], pad: 'valid', act: 'linear' },
];

for (const u of UNITS) {
  test(`fused ${u.depthwise ? 'depthwise' : 'conv'} ${u.k}x${u.k}/${u.strides[0]} + ${u.act}: value and gradients match the unfused ops`, () => {
    const c: ConvPart = { layer: 'u', depthwise: u.depthwise, strides: u.strides, pad: u.pad, dilations: [1, 1], kernel: 'u/k', kernelShape: [] };
    const fShape: [number, number, number, number] = u.depthwise ? [u.k, u.k, u.x[3], 1] : [u.k, u.k, u.x[3], u.cout];
    // Scaled so that a good share of pre-activations lands on each side of 0 and 6.
    const xv = tf.variable(tf.randomNormal(u.x, 0, 3, 'float32', 1));
    const fv = tf.variable(tf.randomNormal(fShape, 0, 1, 'float32', 2));
    const bv = tf.variable(tf.randomNormal([u.cout], 1, 2, 'float32', 3));
    const info = tf.backend_util.computeConv2DInfo(u.x, fShape, u.strides, 1, u.pad as 'same', undefined, u.depthwise);
    const r = tf.randomNormal(info.outShape, 0, 1, 'float32', 4);
    const unfused = () => {
      const args = { x: tf.mul(xv, 1) as tf.Tensor4D, filter: fv as tf.Tensor4D, strides: u.strides, pad: u.pad as 'same', bias: bv };
      let y: tf.Tensor = u.depthwise ? tf.add(tf.depthwiseConv2d(args.x, args.filter, u.strides, args.pad), bv) : tf.add(tf.conv2d(args.x, args.filter, u.strides, args.pad), bv);
      y = u.act === 'relu6' ? tf.relu6(y) : u.act === 'relu' ? tf.relu(y) : y;
      return tf.sum(tf.mul(y, r)) as tf.Scalar;
    };
    const fused = () => tf.sum(tf.mul(convBnAct(tf.mul(xv, 1) as tf.Tensor4D, fv as tf.Tensor4D, bv as tf.Tensor1D, c, u.act), r)) as tf.Scalar;
    const a = tf.variableGrads(fused, [xv, fv, bv]);
    const b = tf.variableGrads(unfused, [xv, fv, bv]);
    assertClose(a.value, b.value, 'value');
    for (const v of [xv, fv, bv]) assertClose(a.grads[v.name], b.grads[v.name], `grad of ${v.name}`);
    // A constant input (cached features) gets no input gradient, the others are unchanged.
    const xc = tf.randomNormal(u.x, 0, 3, 'float32', 5) as tf.Tensor4D;
    const leaf = tf.variableGrads(() => tf.sum(tf.mul(convBnAct(xc, fv as tf.Tensor4D, bv as tf.Tensor1D, c, u.act), r)) as tf.Scalar, [fv, bv]);
    const ref = tf.variableGrads(() => {
      const y = u.depthwise ? tf.depthwiseConv2d(xc, fv as tf.Tensor4D, u.strides, u.pad as 'same') : tf.conv2d(xc, fv as tf.Tensor4D, u.strides, u.pad as 'same');
      const z = tf.add(y, bv);
      return tf.sum(tf.mul(u.act === 'relu6' ? tf.relu6(z) : u.act === 'relu' ? tf.relu(z) : z, r)) as tf.Scalar;
    }, [fv, bv]);
    for (const v of [fv, bv]) assertClose(leaf.grads[v.name], ref.grads[v.name], `leaf grad of ${v.name}`);
    tf.dispose([xv, fv, bv, r, xc, a.value, b.value, leaf.value, ref.value, ...Object.values(a.grads), ...Object.values(b.grads), ...Object.values(leaf.grads), ...Object.values(ref.grads)]);
  });
}

for (const [label, shape, withGamma, withBias] of [
  ['conv with gamma', [1, 1, 5, 7], true, false],
  ['depthwise with gamma and conv bias', [3, 3, 6, 1], true, true],
  ['conv without gamma (scale=False)', [3, 3, 2, 4], false, true],
  // Channels in fours: the SIMD loops on wasm.
  ['depthwise, 8 channels', [3, 3, 8, 1], true, true],
  ['1x1 conv, 12 channels', [1, 1, 10, 12], true, false],
] as const) {
  test(`BatchNorm fold op (${label}): values and gradients match the tf ops it replaces`, () => {
    const channels = shape[2] * shape[3] === shape[2] ? shape[2] : shape[3];
    const kernel = tf.variable(tf.randomNormal([...shape], 0, 1, 'float32', 11));
    const gamma = tf.variable(tf.randomNormal([channels], 1, 0.3, 'float32', 12));
    const beta = tf.variable(tf.randomNormal([channels], 0, 1, 'float32', 13));
    const bias = tf.variable(tf.randomNormal([channels], 0, 1, 'float32', 14));
    const mean = tf.randomNormal([channels], 0, 1, 'float32', 15) as tf.Tensor1D;
    const variance = tf.randomUniform([channels], 0.1, 2, 'float32', 16) as tf.Tensor1D;
    const rf = tf.randomNormal([...shape], 0, 1, 'float32', 17);
    const rb = tf.randomNormal([channels], 0, 1, 'float32', 18);
    const loss = (f: tf.Tensor, b: tf.Tensor) => tf.add(tf.sum(tf.mul(f, rf)), tf.sum(tf.mul(b, rb))) as tf.Scalar;
    const vars = [kernel, beta, ...(withGamma ? [gamma] : []), ...(withBias ? [bias] : [])];
    const ours = tf.variableGrads(() => {
      const { filter, bias: b } = foldConvBnOp({ kernel: kernel as tf.Tensor4D, gamma: withGamma ? (gamma as tf.Tensor1D) : undefined, beta: beta as tf.Tensor1D, bias: withBias ? (bias as tf.Tensor1D) : undefined, mean, variance, epsilon: 1e-3 });
      return loss(filter, b);
    }, vars);
    const ref = tf.variableGrads(() => {
      const inv = tf.rsqrt(tf.add(variance, 1e-3));
      const s = withGamma ? tf.mul(gamma, inv) : inv;
      const filter = tf.mul(kernel, shape[3] === 1 && shape[2] === channels ? tf.reshape(s, [channels, 1]) : s);
      const b = tf.add(tf.add(beta, tf.mul(tf.neg(mean), s)), withBias ? tf.mul(bias, s) : 0);
      return loss(filter, b);
    }, vars);
    assertClose(ours.value, ref.value, 'value');
    for (const v of vars) assertClose(ours.grads[v.name], ref.grads[v.name], `grad of ${v.name}`);
    tf.dispose([kernel, gamma, beta, bias, mean, variance, rf, rb, ours.value, ref.value, ...Object.values(ours.grads), ...Object.values(ref.grads)]);
  });
}

test('a suffix training step (last 3 blocks + top of MobileNetV2) has the same gradients fused and unfused, in hundreds of kernels', async () => {
  const net = (await loadBackbone(MOBILENET_V2, { id: 'v2', preprocessing: PRE })) as KerasBackbone;
  const from = net.groups.length - 4;
  net.setTrainable(new Set([from, from + 1, from + 2, from + 3]));
  const images = await hymenopteraBatch(4);
  const features = net.forwardFrozen(images, { to: from });
  const vars = net.groups.flatMap((_, i) => net.groupVariables(i));
  const target = tf.randomNormal([4, ...net.outputShape], 0, 1, 'float32', 9);
  const loss = () => tf.mean(tf.square(tf.sub(net.forwardTrainable(features, { from, training: true }), target))) as tf.Scalar;
  net.setFusedUnits(false);
  const ref = tf.variableGrads(loss, vars);
  net.setFusedUnits(true);
  const ours = tf.variableGrads(loss, vars);
  assertClose(ours.value, ref.value, 'loss');
  // 5e-3 of each tensor's largest element. Where an activation lies within rounding of 0 or 6,
  // the fused and unfused units (which round differently: FMA or not) can disagree on its ReLU6
  // mask. One such flip in Conv_1 (seen with 1-thread features) moves its channel's filter and
  // BatchNorm gradients by up to 3.6e-3 of the largest, and everything below it by ~3e-4; an
  // indexing error moves elements by O(1). Each kernel is checked tightly in its own test.
  for (const v of vars) assertClose(ours.grads[v.name], ref.grads[v.name], `grad of ${v.name}`, 5e-3);
  const profile = await tf.profile(() => {
    const { value, grads } = tf.variableGrads(loss, vars);
    tf.dispose([value, ...Object.values(grads)]);
  });
  assert.ok(profile.kernels.length < 600, `${profile.kernels.length} kernels per step`);
  tf.dispose([images, features, target, ref.value, ours.value, ...Object.values(ref.grads), ...Object.values(ours.grads)]);
  net.dispose();
});

test('global average pool: value and gradient match tf.mean over height and width (SIMD and JS widths)', () => {
  for (const shape of [[3, 7, 7, 16], [2, 5, 3, 6]] as [number, number, number, number][]) {
    const x = tf.variable(tf.randomNormal(shape, 0, 2, 'float32', 4));
    const w = tf.randomNormal([shape[3], 3], 0, 1, 'float32', 5);
    const loss = (pool: (t: tf.Tensor4D) => tf.Tensor2D) => () => tf.sum(tf.square(tf.matMul(pool(x as unknown as tf.Tensor4D), w))) as tf.Scalar;
    assertClose(globalAvgPool(x as unknown as tf.Tensor4D), tf.mean(x, [1, 2]), `pool ${shape}`);
    const ours = tf.variableGrads(loss(globalAvgPool), [x]);
    const ref = tf.variableGrads(loss((t) => tf.mean(t, [1, 2]) as tf.Tensor2D), [x]);
    assertClose(ours.grads[x.name], ref.grads[x.name], `grad ${shape}`);
    tf.dispose([x, w, ours.value, ref.value, ...Object.values(ours.grads), ...Object.values(ref.grads)]);
  }
});

test('a clone shares its data on wasm but outlives the original, and the memory is freed with the last one', () => {
  const before = tf.memory().numBytes;
  const a = tf.tensor1d([1, 2, 3]);
  const b = tf.clone(a);
  a.dispose();
  assert.deepEqual(Array.from(b.dataSync()), [1, 2, 3]);
  b.dispose();
  assert.equal(tf.memory().numBytes, before);
});

test('activation gradient + bias sums: the SIMD pass matches the JS loop', (t) => {
  if (tf.getBackend() !== 'wasm') return t.skip('the SIMD pass is wasm-only');
  for (const shape of [[16, 7, 7, 336], [3, 5, 5, 8]] as const) {
    const dy = tf.randomNormal([...shape], 0, 1, 'float32', 11);
    const y = tf.clipByValue(tf.randomNormal([...shape], 2, 4, 'float32', 12), -1, 7);
    const [dz, db] = runActGradBias(dy, y, 'relu6');
    const [got, gotDb] = [dz.dataSync(), db.dataSync()];
    const c = shape[3];
    const [refDz, refDb] = [new Float32Array(dy.size), new Float32Array(c)];
    actGradBias(dy.dataSync() as Float32Array, y.dataSync() as Float32Array, c, 'relu6', refDz, refDb);
    // Equal values (the JS loop's masked-out negatives are -0, the SIMD pass's +0).
    assert.ok(got.every((v, i) => v === refDz[i]), `${shape}: dz`);
    assert.ok(refDz.some((v) => v === 0) && refDz.some((v) => v !== 0), 'both sides of the mask');
    for (let i = 0; i < c; i++) assert.ok(Math.abs(gotDb[i] - refDb[i]) <= 1e-4 * Math.max(1, Math.abs(refDb[i])), `${shape}: db[${i}] ${gotDb[i]} vs ${refDb[i]}`);
    tf.dispose([dy, y, dz, db]);
  }
});

test('activation gradient + bias sums: the row blocks shared with the helper thread (two threads) give the one-thread result bit for bit', (t) => {
  if (tf.getBackend() !== 'wasm' || !gemmFor(tf.backend())?.helper()) return t.skip('no helper thread');
  const dy = tf.randomNormal([16, 7, 7, 1280], 0, 1, 'float32', 13);
  const y = tf.randomNormal([16, 7, 7, 1280], 2, 4, 'float32', 14);
  const before = gemmThreadCount();
  const run = (threads: number) => {
    setGemmThreads(threads);
    const [dz, db] = runActGradBias(dy, y, 'relu6');
    const out = [dz.dataSync().slice(), db.dataSync().slice()];
    tf.dispose([dz, db]);
    return out;
  };
  try {
    assert.deepEqual(run(2), run(1));
  } finally {
    setGemmThreads(before);
  }
  tf.dispose([dy, y]);
});

test('global average pool: the images shared with the helper thread (two threads) give the one-thread value and gradient bit for bit', (t) => {
  if (tf.getBackend() !== 'wasm' || !gemmFor(tf.backend())?.helper()) return t.skip('no helper thread');
  // MobileNetV2's top at batch 16, and an odd batch with more rows than one float32 block (81 > 64).
  for (const shape of [[16, 7, 7, 1280], [5, 9, 9, 12]] as [number, number, number, number][]) {
    const x = tf.variable(tf.randomNormal(shape, 0, 2, 'float32', 15));
    const w = tf.randomNormal([shape[3], 3], 0, 1, 'float32', 16);
    const before = gemmThreadCount();
    const run = (threads: number) => {
      setGemmThreads(threads);
      const y = globalAvgPool(x as unknown as tf.Tensor4D);
      const g = tf.variableGrads(() => tf.sum(tf.square(tf.matMul(globalAvgPool(x as unknown as tf.Tensor4D), w))) as tf.Scalar, [x]);
      const out = [y.dataSync().slice(), g.grads[x.name].dataSync().slice()];
      tf.dispose([y, g.value, ...Object.values(g.grads)]);
      return out;
    };
    try {
      const one = run(1);
      assert.deepEqual(run(2), one, `${shape}`);
      tf.tidy(() => assertClose(tf.tensor(one[0], [shape[0], shape[3]]), tf.mean(x, [1, 2]), `pool ${shape}`));
    } finally {
      setGemmThreads(before);
    }
    tf.dispose([x, w]);
  }
});
