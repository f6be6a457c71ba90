import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../src/main/engine/backend';
import { gemmFor, gemmThreadCount, setGemmThreads } from '../../../src/main/engine/kernels/gemm-simd';
import { INVERTED_RESIDUAL_KERNEL, setInvertedResiduals } from '../../../src/main/engine/kernels/inverted-residual';
import { fileIOHandler, loadBackbone } from '../../../src/main/engine/net/index';
import { hymenopteraBatch, maxAbsDiff, MOBILENET_V2, PRE } from './net-helpers';

before(async () => {
  await initBackend();
});

/** Run `fn` with the block kernel on or off and our kernels on `threads` threads (2: with the helper thread). */
async function withBlocks<T>(on: boolean, fn: () => T | Promise<T>, threads = 1): Promise<T> {
  const before = gemmThreadCount();
  const was = setInvertedResiduals(on);
  setGemmThreads(threads);
  try {
    return await fn();
  } finally {
    setGemmThreads(before);
    setInvertedResiduals(was);
  }
}

const helperThread = () => tf.getBackend() === 'wasm' && gemmFor(tf.backend())?.helper() != null;

// 224 px: the early blocks take several bands each (expanded rows carried between bands,
// stride 1 and 2, with and without the residual, the first block without an expand conv).
// 97x131: odd sizes, so TF's 'same' padding is uneven and the last band is short.
// Two threads split 3 images 2 + 1, and a single image by rows.
for (const [h, w, n, threads] of [[224, 224, 3, 1], [97, 131, 3, 1], [224, 224, 3, 2], [97, 131, 1, 2]] as const) {
  test(`MobileNetV2 0.35 at ${h}x${w}, ${n} photo(s), ${threads} thread(s): frozen blocks as one kernel match the layer-by-layer path (and tf.layers) on real photos`, async (t) => {
    if (tf.getBackend() !== 'wasm') return t.skip('the block kernel is wasm-only');
    if (threads === 2 && !helperThread()) return t.skip('single-threaded wasm memory: no helper thread');
    const net = await loadBackbone(MOBILENET_V2, { id: 'mnv2', preprocessing: { ...PRE, size: h } });
    const photos = await hymenopteraBatch(n, Math.max(h, w));
    const images = tf.tidy(() => tf.slice(photos, [0, 0, 0, 0], [n, h, w, 3]));
    const layered = await withBlocks(false, () => net.forwardFrozen(images));
    const before = tf.memory().numTensors;
    const { fused, kernels } = await withBlocks(true, async () => {
      const profile = await tf.profile(() => tf.dispose(net.forwardFrozen(images)));
      return { fused: net.forwardFrozen(images), kernels: profile.kernels.map((k) => k.name) };
    }, threads);
    assert.equal(tf.memory().numTensors, before + 1, 'only the output is left');
    // MobileNetV2 has 17 inverted-residual blocks, 10 of them with the residual add.
    assert.equal(kernels.filter((k) => k === INVERTED_RESIDUAL_KERNEL).length, 17, kernels.join(' '));
    assert.ok(!kernels.includes('Add'), 'the residual adds ran inside the block kernel');
    assert.deepEqual(fused.shape, layered.shape);
    const scale = Math.max(1, tf.tidy(() => tf.max(tf.abs(layered)).dataSync()[0]));
    // The depthwise convs run our kernel instead of XNNPACK's: float32 rounding of another order.
    assert.ok(maxAbsDiff(fused, layered) < 3e-5 * scale, `vs layer by layer: ${maxAbsDiff(fused, layered)}`);
    if (threads === 2) {
      // Each block output value is computed by the same calls on either thread (the 'top'
      // 1x1 conv after the blocks runs XNNPACK's kernel with two threads, ours with one).
      const to = net.groups.length - 1;
      const [two, one] = [await withBlocks(true, () => net.forwardFrozen(images, { to }), 2), await withBlocks(true, () => net.forwardFrozen(images, { to }), 1)];
      assert.equal(maxAbsDiff(two, one), 0, 'two threads give exactly the one-thread result');
      tf.dispose([two, one]);
    }
    if (h === 224 && w === 224) {
      // tf.layers' model is built for 224 x 224.
      const model = await tf.loadLayersModel(fileIOHandler(MOBILENET_V2));
      const ref = model.predict(images) as tf.Tensor;
      assert.ok(maxAbsDiff(fused, ref) < 3e-5 * scale, `vs tf.layers: ${maxAbsDiff(fused, ref)}`);
      ref.dispose();
      model.dispose();
    }
    tf.dispose([photos, images, layered, fused]);
    net.dispose();
  });
}

test('trainable blocks, and every block of a forward under a tape, run layer by layer', async (t) => {
  if (tf.getBackend() !== 'wasm') return t.skip('the block kernel is wasm-only');
  const net = await loadBackbone(MOBILENET_V2, { id: 'mnv2', preprocessing: PRE });
  const images = await hymenopteraBatch(2);
  const G = net.groups.length;
  net.setTrainable(new Set([G - 2, G - 1]));
  // tf.profile returns the engine's one profile object: count before the next profile.
  const blocks = async (f: () => void) => (await tf.profile(f)).kernels.filter((k) => k.name === INVERTED_RESIDUAL_KERNEL).length;
  const kernels = await withBlocks(true, async () => [await blocks(() => tf.dispose(net.forwardFrozen(images, { to: G - 2 }))), await blocks(() => tf.dispose(net.forwardTrainable(images)))]);
  // Frozen: the stem's block and blocks 1..15 (group G-2, block_16, is trainable). Trainable forward: none, as the
  // tape must see every op (gradients may have to flow through frozen blocks).
  assert.deepEqual(kernels, [G - 2, 0]);
  images.dispose();
  net.dispose();
});
