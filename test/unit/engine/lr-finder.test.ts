import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../src/main/engine/backend';
import { lrFind, steepestIndex, valleyIndex } from '../../../src/main/engine/lr-finder';
import { Head } from '../../../src/main/engine/heads';
import { headSchema } from '../../../src/main/engine/config';
import { FakeNet, FakeSource } from './fake-net';

before(async () => {
  await initBackend();
});

const snapshot = (m: Map<string, tf.Tensor>) => {
  const out = new Map([...m].map(([k, t]) => [k, Array.from(t.dataSync())]));
  tf.dispose([...m.values()]);
  return out;
};

test('valley and steepest-slope suggestions on a known curve', () => {
  const lrs = Array.from({ length: 50 }, (_, i) => 1e-6 * 10 ** (i / 7));
  // flat, then falling between i = 10 and 30, then diverging
  const losses = lrs.map((_, i) => (i < 10 ? 2 : i < 30 ? 2 - (i - 10) * 0.08 : 0.4 + (i - 30) ** 2 * 0.05));
  const s = steepestIndex(lrs, losses);
  assert.ok(s >= 10 && s <= 30, `steepest ${s}`);
  const v = valleyIndex(losses);
  assert.ok(v > 10 && v < 30, `valley ${v}`);
});

test('lr finder: exponential range, smoothed curve, stops on divergence, restores every weight', async () => {
  const net = new FakeNet(8, 2);
  const head = new Head(headSchema.parse({ kind: 'concat-pool', hidden: 8 }), net.outputShape, 2, 4);
  const netBefore = snapshot(net.getWeights());
  const headBefore = snapshot(head.getWeights());
  const tensors = tf.memory().numTensors;
  const r = await lrFind({ net, head, train: new FakeSource(32), config: { batchSize: 8, augment: false, optimizer: { name: 'sgd', momentum: 0.9 } }, groups: ['block_2', 'top'], minLr: 1e-5, maxLr: 1e3, steps: 60 });
  assert.ok(r.diverged, 'an lr of 1e3 with SGD diverges');
  assert.ok(r.lrs.length < 60 && r.lrs.length > 10);
  assert.ok(Math.abs(r.lrs[0] - 1e-5) < 1e-12);
  const ratio = r.lrs[1] / r.lrs[0];
  assert.ok(Math.abs(ratio - (1e3 / 1e-5) ** (1 / 59)) < 1e-9, 'exponential steps');
  assert.equal(r.smoothed.length, r.lrs.length);
  assert.deepEqual(r.groups, ['block_2', 'top']);
  for (const k of ['steepest', 'valley', 'minimum'] as const) assert.ok(r.suggestions[k] >= 1e-6 && r.suggestions[k] <= 1e3, `${k} = ${r.suggestions[k]}`);
  assert.deepEqual(snapshot(net.getWeights()), netBefore, 'backbone weights restored');
  assert.deepEqual(snapshot(head.getWeights()), headBefore, 'head weights (and BN statistics) restored');
  assert.equal(tf.memory().numTensors, tensors + 5 - 0, 'only the 5 variables of the 2 trainable groups remain');
  head.dispose();
  net.dispose();
});

test('lr finder with a fresh head on the frozen backbone uses the feature cache', async () => {
  const net = new FakeNet(8, 2);
  const src = new FakeSource(16);
  const r = await lrFind({ net, train: src, config: { batchSize: 8, augment: false }, steps: 20, maxLr: 1 });
  assert.equal(r.lrs.length, 20);
  assert.deepEqual(r.groups, []);
  assert.equal(src.loads, 1, 'images decoded once, then cached features');
  net.dispose();
});
