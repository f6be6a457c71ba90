/**
 * The engine end to end on real photos with the real MobileNetV2 0.35 backbone: a short
 * fine-tune on a hymenoptera subset beats chance clearly, frozen weights and every
 * BatchNorm statistic stay bit-identical, and the LR finder leaves the weights untouched.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../src/main/engine/backend';
import { loadBackbone } from '../../../src/main/engine/net/index';
import type { BackboneNet } from '../../../src/main/engine/net/types';
import { findBackbone } from '../../../src/main/engine/backbones/registry';
import { train } from '../../../src/main/engine/trainer';
import { lrFind } from '../../../src/main/engine/lr-finder';
import { resolveConfig } from '../../../src/main/engine/strategies';
import { FolderSource, HYMENOPTERA, MNV2_035 } from './real-source';

let net: BackboneNet;
const trainSrc = new FolderSource(`${HYMENOPTERA}/train`, 224, 16, 0);
const valSrc = new FolderSource(`${HYMENOPTERA}/val`, 224, 16, 0);

before(async () => {
  await initBackend();
  const entry = findBackbone('mobilenet_v2_0.35_224')!;
  net = await loadBackbone(MNV2_035, { id: entry.id, preprocessing: entry.preprocessing });
});

after(() => net.dispose());

const arrays = (m: Map<string, tf.Tensor>) => {
  const out = new Map([...m].map(([k, t]) => [k, t.dataSync().slice() as Float32Array]));
  tf.dispose([...m.values()]);
  return out;
};

test('a short fine-tune on hymenoptera beats chance; frozen weights and BN statistics stay bit-identical', async () => {
  const pretrained = net.getWeights();
  const before = new Map([...pretrained].map(([k, t]) => [k, t.dataSync().slice() as Float32Array]));
  const config = resolveConfig('progressive', {
    epochs: 3,
    batchSize: 16,
    augment: false,
    optimizer: { lr: 3e-3 },
    unfreeze: { stages: [{ afterEpoch: 1, groups: 2, lrMult: 0.1 }], resetOptimizer: false },
  });
  const r = await train({ net, train: trainSrc, val: valSrc, config });
  assert.equal(r.status, 'completed');
  assert.equal(r.featureCache.group, 'block_16', 'the prefix up to the earliest unfrozen group is cached');
  assert.deepEqual(r.epochs.map((e) => e.trainable), [[], ['block_16', 'top'], ['block_16', 'top']]);
  assert.ok(r.best!.val_accuracy >= 0.75, `val accuracy ${r.best!.val_accuracy} on 2 classes`);
  console.log(`hymenoptera subset (32 train / 32 val): ${r.epochs.map((e) => e.val_accuracy.toFixed(3)).join(' ')}`);
  const afterW = arrays(net.getWeights());
  let moved = 0;
  for (const [name, w] of before) {
    const trainableGroup = /^(block_16_|Conv_1)/.test(name);
    const stat = /moving_(mean|variance)$/.test(name);
    if (!trainableGroup || stat) assert.deepEqual(afterW.get(name), w, `${name} must be bit-identical`);
    else if (afterW.get(name)!.some((v, i) => v !== w[i])) moved++;
  }
  assert.ok(moved >= 6, `trainable weights moved (${moved})`);
  r.head.dispose();
  // Put the pretrained weights back for the next test.
  net.setWeights(pretrained);
  tf.dispose([...pretrained.values()]);
});

test('the LR finder on the just-unfrozen groups restores the weights', async () => {
  const before = arrays(net.getWeights());
  const r = await lrFind({ net, train: trainSrc, config: { batchSize: 16, augment: false, microBatch: 8 }, groups: ['top'], steps: 12, minLr: 1e-5, maxLr: 1 });
  assert.equal(r.lrs.length, 12);
  assert.ok(r.losses.every(Number.isFinite));
  assert.deepEqual(arrays(net.getWeights()), before);
});
