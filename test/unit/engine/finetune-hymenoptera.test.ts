/**
 * The engine end to end on real photos with the real MobileNetV2 0.35 backbone and the
 * datasets slice's ImageSource: a short fine-tune on a hymenoptera subset beats chance
 * clearly, frozen weights and every BatchNorm statistic stay bit-identical, and the LR
 * finder leaves the weights untouched.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../src/main/engine/backend';
import { loadBackbone } from '../../../src/main/engine/net/index';
import type { BackboneNet } from '../../../src/main/engine/net/types';
import type { ImageSource } from '../../../src/main/engine/data';
import { findBackbone } from '../../../src/main/engine/backbones/registry';
import { train } from '../../../src/main/engine/trainer';
import { lrFind } from '../../../src/main/engine/lr-finder';
import { resolveConfig } from '../../../src/main/engine/strategies';
import { importDataset, openImageSource } from '../../../src/main/dataset/image-source';
import { hymenopteraDir as HYMENOPTERA, mobilenetV2Dir } from '../../helpers/paths';

const MNV2_035 = path.join(mobilenetV2Dir, 'model.json');

const entry = findBackbone('mobilenet_v2_0.35_224')!;

/** The first `n` JPEGs of each class of each split, imported like a user's folder. */
async function hymenopteraSubset(n: number): Promise<{ train: ImageSource; val: ImageSource; home: string }> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'engine-hym-'));
  const root = path.join(home, 'hymenoptera');
  for (const split of ['train', 'val']) {
    for (const cls of ['ants', 'bees']) {
      const src = path.join(HYMENOPTERA, split, cls);
      fs.mkdirSync(path.join(root, split, cls), { recursive: true });
      for (const f of fs.readdirSync(src).filter((x) => x.endsWith('.jpg')).sort().slice(0, n)) fs.copyFileSync(path.join(src, f), path.join(root, split, cls, f));
    }
  }
  const dirs = { datasetsDir: path.join(home, 'datasets'), decodeCacheDir: path.join(home, 'decoded') };
  const { snapshot } = await importDataset({ path: root, ...dirs });
  const open = (split: 'train' | 'val') => openImageSource({ snapshot, split, preprocessing: entry.preprocessing, cacheDir: dirs.decodeCacheDir, augment: { randomResizedCrop: { scale: [0.6, 1], ratio: [3 / 4, 4 / 3] }, hflip: true }, seed: 0 });
  return { train: (await open('train')) as ImageSource, val: (await open('val')) as ImageSource, home };
}

let net: BackboneNet;
let trainSrc: ImageSource;
let valSrc: ImageSource;
let home: string;

before(async () => {
  await initBackend();
  net = await loadBackbone(MNV2_035, { id: entry.id, preprocessing: entry.preprocessing });
  ({ train: trainSrc, val: valSrc, home } = await hymenopteraSubset(16));
});

after(() => {
  net.dispose();
  fs.rmSync(home, { recursive: true, force: true });
});

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
