import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../src/main/engine/backend';
import { train } from '../../../src/main/engine/trainer';
import { buildFeatureStore, trainViews } from '../../../src/main/engine/feature-cache';
import type { TrainConfigInput } from '../../../src/main/engine/config';
import { FakeNet, FakeSource } from './fake-net';

before(async () => {
  await initBackend();
});

const BASE: TrainConfigInput = {
  epochs: 2,
  batchSize: 8,
  seed: 1,
  augment: false,
  optimizer: { name: 'adamw', lr: 0.01, weightDecay: 0.01 },
  schedule: { name: 'cosine' },
  trainable: { mode: 'head' },
  unfreeze: { stages: [{ afterEpoch: 1, groups: 2, lrMult: 0.5 }] },
  head: { kind: 'linear', dropout: 0.2 },
};

async function run(config: TrainConfigInput, extra: { cacheDir?: string } = {}) {
  const net = new FakeNet(8, 9);
  const trainSrc = new FakeSource(24);
  const r = await train({ net, train: trainSrc, val: new FakeSource(12, 8, 2, 5), config, ...extra });
  const w = net.getWeights();
  const weights = new Map([...w].map(([k, t]) => [k, Array.from(t.dataSync())]));
  tf.dispose([...w.values()]);
  const frozenCalls = [...net.frozenCalls];
  r.head.dispose();
  net.dispose();
  return { r, weights, frozenCalls, loads: trainSrc.loads };
}

test('cached prefix == uncached path: same seed, no augmentation, same weights after training', async () => {
  const off = await run({ ...BASE, featureCache: { enabled: false } });
  const on = await run({ ...BASE, featureCache: { enabled: 'auto' } });
  assert.equal(off.r.featureCache.enabled, false);
  assert.deepEqual({ ...on.r.featureCache, seconds: 0 }, { enabled: true, boundary: 2, group: 'block_2', views: 1, where: 'memory', bytes: (24 + 12) * 8 * 8 * 8 * 4, seconds: 0 });
  // The cache is built from groups [0, 2) once; training steps never run that prefix again.
  assert.ok(on.frozenCalls.filter((c) => c.startsWith('0-')).every((c) => c === '0-2'));
  assert.equal(on.loads, 1, 'each training image decoded once (one caching batch of 32)');
  assert.ok(off.loads >= 6, 'the uncached path decodes every epoch');
  on.r.epochs.forEach((e, i) => {
    assert.ok(Math.abs(e.train_loss - off.r.epochs[i].train_loss) < 1e-5);
    assert.ok(Math.abs(e.val_loss - off.r.epochs[i].val_loss) < 1e-5);
  });
  for (const [k, v] of off.weights) on.weights.get(k)!.forEach((x, i) => assert.ok(Math.abs(x - v[i]) < 1e-5, `${k}[${i}]: ${x} vs ${v[i]}`));
});

test('a cache over the memory budget goes to disk and gives the same result; a keyed dir is reused', async () => {
  const mem = await run({ ...BASE, epochs: 1 });
  const disk = await run({ ...BASE, epochs: 1, featureCache: { memoryMB: 0 } });
  assert.equal(disk.r.featureCache.where, 'disk');
  assert.deepEqual(disk.weights, mem.weights);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'engine-cache-'));
  const first = await run({ ...BASE, epochs: 1, featureCache: { memoryMB: 0 } }, { cacheDir: dir });
  assert.ok(fs.readdirSync(dir).length === 2, 'train and val stores');
  const second = await run({ ...BASE, epochs: 1, featureCache: { memoryMB: 0 } }, { cacheDir: dir });
  assert.equal(second.loads, 0, 'the second run reads the cached features, decoding nothing');
  assert.deepEqual(second.weights, first.weights);
});

test('with augmentation, K views are cached and each epoch samples one view per image', async () => {
  const net = new FakeNet(8, 9);
  const src = new FakeSource(10);
  const store = await buildFeatureStore({ net, source: src, boundary: 2, views: trainViews(true, 3), memoryBytes: 1e9 });
  assert.equal(store.views, 3);
  const a = store.read([4], [0]);
  const b = store.read([4], [1]);
  assert.notDeepEqual(a, b, 'views differ');
  // The same image's view 1 equals a fresh forward pass of augmented epoch 1.
  const px = await src.load([4], { epoch: 1, augment: true });
  const ref = tf.tidy(() => net.forwardFrozen(tf.tensor4d(Float32Array.from(px, (v) => v / 127.5 - 1), [1, 8, 8, 3]), { to: 2 }));
  const refData = ref.dataSync();
  b.forEach((v, i) => assert.ok(Math.abs(v - refData[i]) < 1e-5));
  ref.dispose();
  store.dispose();
  net.dispose();
  const r = await run({ ...BASE, epochs: 4, augment: true, featureCache: { views: 3 } });
  assert.equal(r.r.featureCache.views, 3);
  assert.equal(r.loads, 3, 'one caching batch per view, then no more decoding');
  const short = await run({ ...BASE, epochs: 2, augment: true, featureCache: { views: 3 } });
  assert.equal(short.r.featureCache.views, 2, 'never more views than epochs');
});

test('head-only epochs evaluate the frozen validation features once, with metrics bit-identical to evaluating them every epoch', async () => {
  const config: TrainConfigInput = { ...BASE, epochs: 3, unfreeze: { stages: [{ afterEpoch: 2, groups: 2, lrMult: 0.5 }] } };
  for (const cache of [{ enabled: false }, { enabled: 'auto' }] as const) {
    // memoryMB 0 leaves no room for the memo (and sends the feature cache to disk, with the same features).
    const memo = await run({ ...config, featureCache: cache });
    const plain = await run({ ...config, featureCache: { ...cache, memoryMB: 0 } });
    const metrics = (x: typeof memo) => x.r.epochs.map((e) => [e.train_loss, e.val_loss, e.val_accuracy]);
    assert.deepEqual(metrics(memo), metrics(plain), `cache ${cache.enabled}`);
    assert.deepEqual(memo.weights, plain.weights);
    const toOutput = (x: typeof memo) => x.frozenCalls.filter((c) => c.endsWith('-4')).length;
    assert.equal(toOutput(plain) - toOutput(memo), 1, 'the second head-only epoch reuses the first one’s validation features');
  }
});
