import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../src/main/engine/backend';
import { BackendIO, type TensorInfo } from '../../../src/main/engine/kernels/backend-io';
import { gemmFor, gemmThreadCount, setGemmThreads } from '../../../src/main/engine/kernels/gemm-simd';
import { depthwiseDirect, depthwiseFilterGradDirect, depthwiseInputGradDirect, dwGeometry, setDirectDepthwise } from '../../../src/main/engine/kernels/depthwise-direct';

before(async () => {
  await initBackend({ prefer: 'wasm' });
});

const info = (t: tf.Tensor): TensorInfo => ({ dataId: t.dataId, shape: t.shape, dtype: t.dtype });

type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
const CASES: { x: [number, number, number, number]; k: [number, number]; strides: [number, number]; pad: Pad }[] = [
  { x: [3, 7, 7, 336], k: [3, 3], strides: [1, 1], pad: 'same' }, // MobileNetV2's last blocks at 224 px
  { x: [2, 16, 16, 24], k: [3, 3], strides: [2, 2], pad: 'same' }, // TF's 'same' on even sizes pads after only
  { x: [2, 15, 13, 8], k: [3, 3], strides: [2, 2], pad: 'same' },
  { x: [2, 9, 40, 4], k: [3, 3], strides: [1, 1], pad: 'same' }, // a wide row: several calls per row run
  { x: [1, 6, 7, 12], k: [3, 2], strides: [1, 2], pad: 'valid' },
  { x: [2, 5, 6, 8], k: [2, 3], strides: [2, 1], pad: [[0, 0], [1, 0], [2, 1], [0, 0]] },
  { x: [2, 1, 1, 16], k: [3, 3], strides: [1, 1], pad: 'same' }, // every tap but the centre in the padding
  { x: [1, 2, 3, 4], k: [1, 3], strides: [1, 1], pad: 'same' },
];

function assertClose(got: Float32Array, want: Float32Array, tol: number, label: string): void {
  assert.equal(got.length, want.length, `${label}: size`);
  let scale = 1;
  for (const w of want) scale = Math.max(scale, Math.abs(w));
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= tol * scale, `${label}: element ${i} is ${got[i]}, expected ${want[i]}`);
}

for (const c of CASES) {
  test(`direct depthwise ${JSON.stringify(c)}: forward (bias, ReLU6) and both gradients match tfjs' own kernels`, () => {
    const io = new BackendIO(tf.backend(), 'wasm');
    const fShape: [number, number, number, number] = [c.k[0], c.k[1], c.x[3], 1];
    const conv = tf.backend_util.computeConv2DInfo(c.x, fShape, c.strides, 1, c.pad as 'same', undefined, true);
    const g = dwGeometry(conv);
    assert.ok(g, 'the direct kernels take this geometry');
    const x = tf.randomNormal(c.x, 0, 2, 'float32', 1);
    const w = tf.randomNormal(fShape, 0, 1, 'float32', 2);
    const bias = tf.randomNormal([c.x[3]], 0, 1, 'float32', 3);
    const dy = tf.randomNormal(conv.outShape, 0, 1, 'float32', 4);
    const label = JSON.stringify(c);

    const out = depthwiseDirect(io, g!, info(x), info(w), info(bias), 0, 6)!;
    const ref = tf.fused.depthwiseConv2d({ x: x as tf.Tensor4D, filter: w as tf.Tensor4D, strides: c.strides, pad: c.pad as 'same', bias, activation: 'relu6' });
    assertClose(io.view(out).slice(), ref.dataSync() as Float32Array, 1e-5, `forward ${label}`);
    io.dispose(out);

    // The gradients against the kernels they replace, run with the direct path switched off.
    const dW = depthwiseFilterGradDirect(io, g!, info(x), info(dy))!;
    const dwValues = io.view(dW).slice();
    io.dispose(dW);
    const was = setDirectDepthwise(false);
    try {
      const attrs = { strides: c.strides, pad: c.pad, dilations: [1, 1], dataFormat: 'NHWC' };
      const refW = tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { ...attrs, filterShape: fShape } as never) as tf.Tensor;
      assertClose(dwValues, refW.dataSync() as Float32Array, 1e-5, `filter gradient ${label}`);
      if (c.strides[0] === 1 && c.strides[1] === 1) {
        setDirectDepthwise(true);
        const dx = depthwiseInputGradDirect(io, g!, info(dy), info(w));
        assert.ok(dx, 'stride 1: the direct input gradient applies');
        const dxValues = io.view(dx!).slice();
        io.dispose(dx!);
        setDirectDepthwise(false);
        const refX = tf.engine().runKernel('DepthwiseConv2dNativeBackpropInput', { dy, filter: w }, { ...attrs, inputShape: c.x } as never) as tf.Tensor;
        assertClose(dxValues, refX.dataSync() as Float32Array, 1e-5, `input gradient ${label}`);
      } else {
        assert.equal(depthwiseInputGradDirect(io, g!, info(dy), info(w)), null, 'strided: the input gradient is left to the scatter kernel');
      }
    } finally {
      setDirectDepthwise(was);
    }
    tf.dispose([x, w, bias, dy, ref]);
  });
}

test('direct depthwise declines what it does not handle: dilation, more than 3x3 taps, channels not in fours, a multiplier', () => {
  const geometry = (x: [number, number, number, number], f: [number, number, number, number], dilation = 1) => dwGeometry(tf.backend_util.computeConv2DInfo(x, f, 1, dilation, 'same', undefined, true));
  assert.ok(geometry([1, 8, 8, 8], [3, 3, 8, 1]));
  assert.equal(geometry([1, 8, 8, 8], [3, 3, 8, 1], 2), null);
  assert.equal(geometry([1, 8, 8, 8], [5, 5, 8, 1]), null);
  assert.equal(geometry([1, 8, 8, 6], [3, 3, 6, 1]), null);
  assert.equal(geometry([1, 8, 8, 8], [3, 3, 8, 2]), null);
  const was = setDirectDepthwise(false);
  assert.equal(geometry([1, 8, 8, 8], [3, 3, 8, 1]), null, 'FINETUNE_DIRECT_DEPTHWISE=0 / switched off');
  setDirectDepthwise(was);
});

test('the direct depthwise forward shared with the helper thread (two threads: half the images each) is bit-identical to one thread', (t) => {
  const io = new BackendIO(tf.backend(), 'wasm');
  if (!gemmFor(tf.backend())?.helper()) return t.skip('single-threaded wasm memory: no helper thread');
  const shape: [number, number, number, number] = [5, 9, 11, 24];
  const g = dwGeometry(tf.backend_util.computeConv2DInfo(shape, [3, 3, 24, 1], [2, 2], 1, 'same', undefined, true))!;
  const x = tf.randomNormal(shape, 0, 2, 'float32', 21);
  const w = tf.randomNormal([3, 3, 24, 1], 0, 1, 'float32', 22);
  const bias = tf.randomNormal([24], 0, 1, 'float32', 23);
  const before = gemmThreadCount();
  const run = (threads: number) => {
    setGemmThreads(threads);
    const out = depthwiseDirect(io, g, info(x), info(w), info(bias), 0, 6)!;
    const values = io.view(out).slice();
    io.dispose(out);
    return values;
  };
  try {
    assert.deepEqual(run(2), run(1));
  } finally {
    setGemmThreads(before);
  }
  tf.dispose([x, w, bias]);
});

test('the direct depthwise filter gradient summed in two halves of the batch (the helper thread takes one) is bit-identical on one and two threads, and right', (t) => {
  const io = new BackendIO(tf.backend(), 'wasm');
  if (!gemmFor(tf.backend())?.helper()) return t.skip('single-threaded wasm memory: no helper thread');
  // MobileNetV2's last blocks at batch 16 (several flushes per half), and an odd batch with a stride.
  for (const [shape, strides] of [[[16, 7, 7, 336], [1, 1]], [[5, 9, 11, 24], [2, 2]]] as [[number, number, number, number], [number, number]][]) {
    const conv = tf.backend_util.computeConv2DInfo(shape, [3, 3, shape[3], 1], strides, 1, 'same', undefined, true);
    const g = dwGeometry(conv)!;
    const x = tf.randomNormal(shape, 0, 2, 'float32', 31);
    const dy = tf.randomNormal(conv.outShape, 0, 1, 'float32', 32);
    const before = gemmThreadCount();
    const run = (threads: number) => {
      setGemmThreads(threads);
      const dW = depthwiseFilterGradDirect(io, g, info(x), info(dy))!;
      const values = io.view(dW).slice();
      io.dispose(dW);
      return values;
    };
    try {
      const one = run(1);
      assert.deepEqual(run(2), one, JSON.stringify(shape));
      const was = setDirectDepthwise(false);
      try {
        const ref = tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { strides, pad: 'same', dilations: [1, 1], dataFormat: 'NHWC', filterShape: [3, 3, shape[3], 1] } as never) as tf.Tensor;
        assertClose(one, ref.dataSync() as Float32Array, 1e-5, JSON.stringify(shape));
        ref.dispose();
      } finally {
        setDirectDepthwise(was);
      }
    } finally {
      setGemmThreads(before);
    }
    tf.dispose([x, dy]);
  }
});
