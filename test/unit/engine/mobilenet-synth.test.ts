/**
 * The synthetic MobileNetV2 the memory bench trains (bench/lib/mobilenet-v2-synth.ts) is the
 * Keras architecture: at alpha 0.35 it reproduces the shipped model's weights by name and
 * shape, at 1.0 it has Keras' 2,257,984 parameters; and the engine splits full fine-tuning
 * of 1.0 at batch 32 into micro-batches while the last groups of 0.35 train in one pass.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { KERAS_PARAMS, makeDivisible, mobilenetV2Filters, synthesiseMobilenetV2 } from '../../../bench/lib/mobilenet-v2-synth';
import { chooseMicroBatch, DEFAULT_TAPE_BUDGET, tapeBytesPerImage } from '../../../src/main/engine/memory';
import { loadBackbone } from '../../../src/main/engine/net/index';
import { mobilenetV2Dir, tempDir } from '../../helpers/paths';
import { PRE } from './net-helpers';

const TEMPLATE = path.join(mobilenetV2Dir, 'model.json');

function specs(modelJson: string): [string, number[]][] {
  return JSON.parse(fs.readFileSync(modelJson, 'utf8')).weightsManifest.flatMap((g: { weights: { name: string; shape: number[] }[] }) => g.weights.map((w) => [w.name, w.shape]));
}

test('makeDivisible and the filter table follow keras.applications.MobileNetV2', () => {
  assert.deepEqual([makeDivisible(32 * 0.35), makeDivisible(5), makeDivisible(32), makeDivisible(Math.trunc(320 * 0.35))], [16, 8, 32, 112]);
  const f = mobilenetV2Filters(1.0);
  assert.equal(f.get('Conv1'), 32);
  assert.equal(f.get('expanded_conv_project'), 16);
  assert.equal(f.get('block_1_expand'), 96);
  assert.equal(f.get('block_16_expand'), 960);
  assert.equal(f.get('block_16_project'), 320);
  assert.equal(f.get('Conv_1'), 1280);
});

test('alpha 0.35 reproduces the shipped model; alpha 1.0 has the Keras parameter count', async () => {
  const dir = tempDir('mnv2-synth-');
  const small = await synthesiseMobilenetV2(TEMPLATE, 0.35, path.join(dir, 'a035'));
  assert.deepEqual(specs(small.modelJson), specs(TEMPLATE));
  assert.equal(small.params, KERAS_PARAMS['0.35']);
  const big = await synthesiseMobilenetV2(TEMPLATE, 1.0, path.join(dir, 'a100'));
  assert.equal(big.params, 2_257_984);
  assert.equal(big.weightBytes, 2_257_984 * 4);
});

test('full fine-tuning of MobileNetV2 1.0 at batch 32 is split into micro-batches that fit the tape budget', async () => {
  const dir = tempDir('mnv2-synth-');
  const { modelJson } = await synthesiseMobilenetV2(TEMPLATE, 1.0, path.join(dir, 'a100'));
  const big = await loadBackbone(modelJson, { id: 'mnv2-1.0-synthetic', preprocessing: PRE });
  const small = await loadBackbone(TEMPLATE, { id: 'mnv2-0.35', preprocessing: PRE });
  try {
    assert.deepEqual(big.boundaryShape(1), [112, 112, 16]);
    assert.deepEqual(big.outputShape, [7, 7, 1280]);
    const micro = chooseMicroBatch(big, 0, 32);
    assert.ok(micro >= 1 && micro < 32, `micro-batch ${micro}`);
    assert.ok(micro * tapeBytesPerImage(big, 0) <= DEFAULT_TAPE_BUDGET);
    assert.ok(micro < chooseMicroBatch(small, 0, 32), 'the wider network gets smaller micro-batches');
    assert.equal(chooseMicroBatch(big, 0, 32, 4), 4, 'a requested micro-batch wins');
    assert.equal(chooseMicroBatch(small, small.groups.length - 4, 32), 32, 'the last 4 groups of 0.35 need no split');
  } finally {
    big.dispose();
    small.dispose();
  }
});
