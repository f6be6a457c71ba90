import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { initBackend } from '../../../src/main/engine/backend';
import { builtinKernel, registerTrainingKernels } from '../../../src/main/engine/kernels/index';

type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

interface Case {
  x: [number, number, number, number];
  filter: [number, number, number, number];
  strides: [number, number];
  dilations: [number, number];
  pad: Pad;
}

let backendName = '';

before(async () => {
  backendName = (await initBackend()).name;
  registerTrainingKernels();
});

/** Deterministic pseudo-random cases: shapes, strides, paddings (incl. explicit), dilations. */
function cases(depthwise: boolean, count: number, seed: number): Case[] {
  let s = seed;
  const rnd = (n: number) => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s % n;
  };
  const out: Case[] = [];
  while (out.length < count) {
    const k: [number, number] = [1 + rnd(4), 1 + rnd(3)];
    const dilated = rnd(3) === 0;
    const strides: [number, number] = dilated ? [1, 1] : [1 + rnd(2), 1 + rnd(3)];
    const dilations: [number, number] = dilated ? [1 + rnd(2), 2] : [1, 1];
    const c = 1 + rnd(6);
    const mult = depthwise ? 1 + (rnd(3) === 0 ? 1 : 0) : 1 + rnd(7);
    const x: Case['x'] = [1 + rnd(3), 5 + rnd(6), 5 + rnd(6), c];
    const pick = rnd(3);
    const pad: Pad = pick === 0 ? 'same' : pick === 1 ? 'valid' : [[0, 0], [rnd(2), rnd(3)], [rnd(3), rnd(2)], [0, 0]];
    const effH = (k[0] - 1) * dilations[0] + 1;
    const effW = (k[1] - 1) * dilations[1] + 1;
    if (pad === 'valid' && (x[1] < effH || x[2] < effW)) continue;
    out.push({ x, filter: [k[0], k[1], c, mult], strides, dilations, pad });
  }
  return out;
}

/**
 * The backend's own kernel on cpu, as reference. Its depthwise gradients ignore dilation,
 * so a dilated filter is expanded (zeros between taps) and run with dilation 1.
 */
async function reference(kernel: string, inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown>, c: Case): Promise<Float32Array> {
  const [dh, dw] = c.dilations;
  const dilate = dh > 1 || dw > 1;
  await tf.setBackend('cpu');
  const copy = (t: tf.Tensor) => tf.tensor(t.dataSync(), t.shape);
  const ins: Record<string, tf.Tensor> = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, copy(v)]));
  const [kh, kw, ci, co] = c.filter;
  const eh = (kh - 1) * dh + 1;
  const ew = (kw - 1) * dw + 1;
  const a: Record<string, unknown> = { ...attrs, dilations: [1, 1] };
  if (dilate && ins.filter) {
    const buf = tf.buffer([eh, ew, ci, co]);
    const f = ins.filter.bufferSync();
    for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) for (let p = 0; p < ci; p++) for (let q = 0; q < co; q++) buf.set(f.get(i, j, p, q), i * dh, j * dw, p, q);
    ins.filter = buf.toTensor();
  }
  if (dilate && a.filterShape) a.filterShape = [eh, ew, ci, co];
  const info = builtinKernel(kernel, 'cpu')!.kernelFunc({ inputs: ins as never, backend: tf.backend(), attrs: a as never }) as tf.TensorInfo;
  let out = tf.engine().makeTensorFromTensorInfo(info);
  if (dilate && a.filterShape) out = tf.stridedSlice(out, [0, 0, 0, 0], [eh, ew, ci, co], [dh, dw, 1, 1]);
  const values = out.dataSync() as Float32Array;
  await tf.setBackend(backendName);
  return values;
}

function assertClose(actual: Float32Array, expected: Float32Array, label: string): void {
  assert.equal(actual.length, expected.length, `${label}: size`);
  let scale = 1;
  for (const v of expected) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < actual.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= 1e-4 * scale, `${label}: element ${i} is ${actual[i]}, expected ${expected[i]}`);
  }
}

for (const depthwise of [false, true]) {
  const [filterKernel, inputKernel] = depthwise
    ? ['DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput']
    : ['Conv2DBackpropFilter', 'Conv2DBackpropInput'];
  test(`${filterKernel} and ${inputKernel} match the cpu backend's kernels on random shapes`, async () => {
    // tfjs' Conv2D gradients take no dilations, so regular convs are tested without them.
    const list = cases(depthwise, 24, depthwise ? 7 : 11).map((c) => (depthwise ? c : { ...c, dilations: [1, 1] as [number, number] }));
    // Channel counts divisible by 4 take the wasm SIMD paths: cover strides, paddings, dilations there too.
    if (depthwise) {
      list.push(
        { x: [2, 9, 9, 8], filter: [3, 3, 8, 1], strides: [1, 1], dilations: [1, 1], pad: 'same' },
        { x: [2, 10, 11, 12], filter: [3, 3, 12, 1], strides: [2, 2], dilations: [1, 1], pad: [[0, 0], [0, 1], [0, 1], [0, 0]] },
        { x: [1, 9, 8, 4], filter: [3, 2, 4, 1], strides: [1, 1], dilations: [2, 2], pad: 'valid' },
        { x: [3, 7, 7, 16], filter: [5, 5, 16, 1], strides: [2, 1], dilations: [1, 1], pad: 'same' },
        // The direct kernels (depthwise-direct.ts): up to 3x3 taps, every kind of edge run.
        { x: [2, 7, 7, 336], filter: [3, 3, 336, 1], strides: [1, 1], dilations: [1, 1], pad: 'same' },
        { x: [2, 12, 12, 24], filter: [3, 3, 24, 1], strides: [2, 2], dilations: [1, 1], pad: 'same' },
        { x: [1, 11, 9, 8], filter: [3, 3, 8, 1], strides: [2, 2], dilations: [1, 1], pad: 'same' },
        { x: [2, 6, 7, 4], filter: [3, 3, 4, 1], strides: [1, 1], dilations: [1, 1], pad: 'valid' },
        { x: [2, 6, 7, 8], filter: [2, 3, 8, 1], strides: [2, 1], dilations: [1, 1], pad: [[0, 0], [1, 0], [2, 1], [0, 0]] },
        { x: [3, 1, 1, 16], filter: [3, 3, 16, 1], strides: [1, 1], dilations: [1, 1], pad: 'same' },
        { x: [2, 2, 3, 12], filter: [3, 3, 12, 1], strides: [1, 1], dilations: [1, 1], pad: 'same' },
        { x: [1, 5, 40, 4], filter: [1, 3, 4, 1], strides: [1, 1], dilations: [1, 1], pad: 'same' },
        { x: [2, 40, 40, 8], filter: [3, 3, 8, 1], strides: [1, 1], dilations: [1, 1], pad: 'same' },
      );
    } else {
      list.push(
        { x: [2, 9, 9, 6], filter: [1, 1, 6, 8], strides: [1, 1], dilations: [1, 1], pad: 'same' },
        { x: [2, 9, 9, 8], filter: [1, 1, 8, 3], strides: [1, 1], dilations: [1, 1], pad: 'valid' },
        { x: [2, 21, 21, 3], filter: [3, 3, 3, 16], strides: [2, 2], dilations: [1, 1], pad: [[0, 0], [0, 1], [0, 1], [0, 0]] },
        { x: [1, 8, 8, 5], filter: [3, 3, 5, 4], strides: [1, 1], dilations: [1, 1], pad: 'same' },
      );
    }
    for (const c of list) {
      const info = tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, c.dilations, c.pad as 'same', undefined, depthwise);
      const x = tf.randomNormal(c.x, 0, 1, 'float32', 1);
      const filter = tf.randomNormal(c.filter, 0, 1, 'float32', 2);
      const dy = tf.randomNormal(info.outShape, 0, 1, 'float32', 3);
      const common = { strides: c.strides, pad: c.pad, dilations: c.dilations, dataFormat: 'NHWC' };
      const label = JSON.stringify(c);
      const fAttrs = { ...common, filterShape: c.filter };
      const dW = tf.engine().runKernel(filterKernel, { x, dy }, fAttrs as never) as tf.Tensor;
      assert.deepEqual(dW.shape, c.filter);
      assertClose(dW.dataSync() as Float32Array, await reference(filterKernel, { x, dy }, fAttrs, c), `${filterKernel} ${label}`);
      const iAttrs = { ...common, inputShape: c.x };
      const dx = tf.engine().runKernel(inputKernel, { dy, filter }, iAttrs as never) as tf.Tensor;
      assert.deepEqual(dx.shape, c.x);
      assertClose(dx.dataSync() as Float32Array, await reference(inputKernel, { dy, filter }, iAttrs, c), `${inputKernel} ${label}`);
      tf.dispose([x, filter, dy, dW, dx]);
    }
  });
}

test('gradients of tf.conv2d / tf.depthwiseConv2d work on the active backend and match cpu', async () => {
  const x = tf.randomNormal([2, 9, 9, 4], 0, 1, 'float32', 5);
  const k = tf.randomNormal([3, 3, 4, 6], 0, 1, 'float32', 6);
  const d = tf.randomNormal([3, 3, 6, 1], 0, 1, 'float32', 7);
  const f = (a: tf.Tensor4D, b: tf.Tensor4D, c: tf.Tensor4D) => tf.sum(tf.square(tf.depthwiseConv2d(tf.relu(tf.conv2d(a, b, 2, 'same')), c, 1, 'same')));
  const grads = tf.grads(f as (...t: tf.Tensor[]) => tf.Tensor);
  const ours = grads([x, k, d]).map((g) => g.dataSync() as Float32Array);
  await tf.setBackend('cpu');
  // Reference: the cpu backend with its own (replaced) kernels put back for this computation.
  const names = ['Conv2DBackpropFilter', 'Conv2DBackpropInput', 'DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput'];
  const ourKernels = names.map((n) => tf.getKernel(n, 'cpu')!);
  const swap = (configs: tf.KernelConfig[]) => configs.forEach((cfg) => {
    tf.unregisterKernel(cfg.kernelName, 'cpu');
    tf.registerKernel(cfg);
  });
  swap(names.map((n) => builtinKernel(n, 'cpu')!));
  const cpuX = tf.tensor(x.dataSync(), x.shape);
  const cpuK = tf.tensor(k.dataSync(), k.shape);
  const cpuD = tf.tensor(d.dataSync(), d.shape);
  const ref = grads([cpuX, cpuK, cpuD]).map((g) => g.dataSync() as Float32Array);
  swap(ourKernels);
  await tf.setBackend(backendName);
  ours.forEach((g, i) => assertClose(g, ref[i], `grad ${i}`));
});

test('BackendIO.transpose2d (SIMD 4x4 blocks on wasm, tfjs Transpose otherwise) equals tf.transpose exactly', async () => {
  const { BackendIO } = await import('../../../src/main/engine/kernels/backend-io');
  const io = new BackendIO(tf.backend(), backendName);
  for (const [r, c] of [[4, 4], [8, 12], [112, 1280], [1280, 112], [6, 10], [3, 8]]) {
    const a = tf.tensor2d(Float32Array.from({ length: r * c }, (_, i) => i * 0.5 - 3), [r, c]);
    const out = io.transpose2d({ dataId: a.dataId, shape: a.shape, dtype: a.dtype }, r, c);
    assert.deepEqual(out.shape, [c, r]);
    const got = io.view(out).slice();
    const want = tf.transpose(a).dataSync();
    assert.deepEqual(got, want, `${r}x${c}`);
    io.dispose(out);
    a.dispose();
  }
});
