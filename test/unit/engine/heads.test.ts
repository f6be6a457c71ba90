import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../src/main/engine/backend';
import { headSchema } from '../../../src/main/engine/config';
import { Head, headKerasLayers } from '../../../src/main/engine/heads';
import { resolveClassWeights, softmaxCrossEntropy } from '../../../src/main/engine/losses';

before(async () => {
  await initBackend();
});

test('linear head: global average pool + Dense, Keras-named weights', () => {
  const head = new Head(headSchema.parse({ kind: 'linear' }), [7, 7, 32], 3, 0);
  const x = tf.randomNormal([4, 7, 7, 32], 0, 1, 'float32', 1);
  const y = head.apply(x, { training: false });
  assert.deepEqual(y.shape, [4, 3]);
  // Equals mean-pool then matMul with head_dense weights.
  const ref = tf.tidy(() => tf.matMul(tf.mean(x, [1, 2]) as tf.Tensor2D, head.getWeightsOf('head_dense/kernel') as tf.Tensor2D).add(head.getWeightsOf('head_dense/bias')));
  assert.ok(tf.max(tf.abs(ref.sub(y))).dataSync()[0] < 1e-5);
  assert.deepEqual(head.params.map((p) => p.keras), ['head_dense/kernel', 'head_dense/bias']);
  assert.equal(head.isNoDecay(head.variables()[1]), true);
  assert.equal(head.isNoDecay(head.variables()[0]), false);
  tf.dispose([x, y, ref]);
  head.dispose();
});

test('concat-pool head: avg+max, BN, Dropout, Dense+ReLU, BN, Dropout, Dense; BN statistics move only in training', () => {
  const cfg = headSchema.parse({ kind: 'concat-pool', hidden: 16, dropout: 0.25, dropoutFinal: 0.5 });
  const head = new Head(cfg, [5, 5, 8], 4, 3);
  assert.deepEqual(head.getWeightsOf('head_bn1/gamma').shape, [16]); // 2 x 8 channels
  assert.deepEqual(head.getWeightsOf('head_hidden/kernel').shape, [16, 16]);
  const x = tf.randomNormal([6, 5, 5, 8], 0, 1, 'float32', 2);
  const before = tf.memory().numTensors;
  const y = head.apply(x, { training: true, seed: 5 });
  assert.deepEqual(y.shape, [6, 4]);
  y.dispose();
  const mean0 = head.getWeightsOf('head_bn1/moving_mean');
  assert.ok(mean0.dataSync().every((v) => v === 0), 'nothing written before commit');
  head.commitStatistics();
  const mean1 = head.getWeightsOf('head_bn1/moving_mean');
  assert.ok(mean1.dataSync().some((v) => v !== 0));
  tf.dispose([mean0, mean1]);
  assert.equal(tf.memory().numTensors, before, 'apply + commit leave no tensors behind');
  // Inference is deterministic (no dropout) and leaves statistics alone.
  const a = head.apply(x, { training: false });
  const b = head.apply(x, { training: false });
  assert.deepEqual(Array.from(a.dataSync()), Array.from(b.dataSync()));
  tf.dispose([a, b, x]);
  head.dispose();
});

test('a backbone that ends in a vector skips pooling', () => {
  for (const kind of ['linear', 'concat-pool'] as const) {
    const head = new Head(headSchema.parse({ kind, hidden: 8 }), [24], 2, 0);
    const x = tf.randomNormal([3, 24]);
    const y = head.apply(x, { training: false });
    assert.deepEqual(y.shape, [3, 2]);
    const layers = headKerasLayers(head);
    assert.ok(!layers.some((l) => /Pooling/.test(l.className)));
    layers.forEach((l) => l.weights.forEach((w) => w.tensor.dispose()));
    tf.dispose([x, y]);
    head.dispose();
  }
});

test('headKerasLayers: Keras layer configs and weights in order, ending in softmax', () => {
  const head = new Head(headSchema.parse({ kind: 'concat-pool', hidden: 16, dropout: 0.25, dropoutFinal: 0.5 }), [7, 7, 8], 3, 0);
  const layers = headKerasLayers(head);
  assert.deepEqual(
    layers.map((l) => `${l.className}:${l.config.name}`),
    ['GlobalAveragePooling2D:head_avg_pool', 'GlobalMaxPooling2D:head_max_pool', 'Concatenate:head_concat', 'BatchNormalization:head_bn1', 'Dropout:head_dropout1', 'Dense:head_hidden', 'BatchNormalization:head_bn2', 'Dropout:head_dropout2', 'Dense:head_dense', 'Activation:head_softmax'],
  );
  assert.deepEqual(layers[0].inbound, ['']);
  assert.deepEqual(layers[2].inbound, ['head_avg_pool', 'head_max_pool']);
  assert.deepEqual(layers[3].weights.map((w) => w.name), ['head_bn1/gamma', 'head_bn1/beta', 'head_bn1/moving_mean', 'head_bn1/moving_variance']);
  assert.deepEqual(layers[8].weights.map((w) => [w.name, w.tensor.shape]), [['head_dense/kernel', [16, 3]], ['head_dense/bias', [3]]]);
  assert.equal(layers[5].config.activation, 'relu');
  assert.equal(layers[9].config.activation, 'softmax');
  layers.forEach((l) => l.weights.forEach((w) => w.tensor.dispose()));
  const lin = headKerasLayers(new Head(headSchema.parse({}), [7, 7, 8], 3, 0));
  assert.deepEqual(lin.map((l) => l.config.name), ['head_pool', 'head_dense', 'head_softmax']);
  head.dispose();
});

test('cross-entropy with label smoothing and class weights', () => {
  const logits = tf.tensor2d([
    [2, 0],
    [0, 1],
    [1, 1],
  ]);
  const labels = tf.tensor1d([0, 1, 1], 'int32');
  const lse = (a: number, b: number) => Math.log(Math.exp(a) + Math.exp(b));
  const nll = [lse(2, 0) - 2, lse(0, 1) - 1, lse(1, 1) - 1];
  const plain = softmaxCrossEntropy(logits, labels, { labelSmoothing: 0, classWeights: null });
  assert.ok(Math.abs(plain.dataSync()[0] - (nll[0] + nll[1] + nll[2]) / 3) < 1e-6);
  // eps = 0.2, K = 2: target 0.9 / 0.1
  const other = [lse(2, 0) - 0, lse(0, 1) - 0, lse(1, 1) - 1];
  const smooth = nll.map((v, i) => 0.9 * v + 0.1 * other[i]);
  const sm = softmaxCrossEntropy(logits, labels, { labelSmoothing: 0.2, classWeights: null });
  assert.ok(Math.abs(sm.dataSync()[0] - (smooth[0] + smooth[1] + smooth[2]) / 3) < 1e-6);
  const w = softmaxCrossEntropy(logits, labels, { labelSmoothing: 0, classWeights: Float32Array.from([3, 1]) });
  assert.ok(Math.abs(w.dataSync()[0] - (3 * nll[0] + nll[1] + nll[2]) / 5) < 1e-6);
  assert.deepEqual(Array.from(resolveClassWeights('balanced', Int32Array.from([0, 1, 1, 1]), 2)!), [2, Math.fround(2 / 3)]);
  assert.throws(() => resolveClassWeights([1, 2, 3], Int32Array.from([0]), 2, ['ants', 'bees']), /3 weights but the dataset has 2 classes \(ants, bees\)/);
  tf.dispose([logits, labels, plain, sm, w]);
});

test('head BN statistics start from the first batch, then follow a moving average', () => {
  const head = new Head(headSchema.parse({ kind: 'concat-pool', hidden: 4, dropout: 0, dropoutFinal: 0 }), [6], 2, 0);
  const x1 = tf.randomNormal([8, 6], 3, 2, 'float32', 1);
  const x2 = tf.randomNormal([8, 6], -1, 1, 'float32', 2);
  const mean = (x: tf.Tensor) => Array.from(tf.tidy(() => tf.mean(x, 0)).dataSync());
  tf.dispose(head.apply(x1, { training: true, step: 0 }));
  head.commitStatistics();
  const m1 = head.getWeightsOf('head_bn1/moving_mean');
  Array.from(m1.dataSync()).forEach((v, i) => assert.ok(Math.abs(v - mean(x1)[i]) < 1e-5, 'step 0: the batch mean itself'));
  tf.dispose(head.apply(x2, { training: true, step: 1 }));
  head.commitStatistics();
  const m2 = head.getWeightsOf('head_bn1/moving_mean');
  Array.from(m2.dataSync()).forEach((v, i) => assert.ok(Math.abs(v - (mean(x1)[i] + mean(x2)[i]) / 2) < 1e-5, 'step 1: the average of both batches'));
  tf.dispose([x1, x2, m1, m2]);
  head.dispose();
});
