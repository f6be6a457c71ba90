import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../src/main/engine/backend';
import { encodeBackboneArtifacts, fileIOHandler, loadBackbone, type BackboneNet } from '../../../src/main/engine/net/index';
import { bitsEqual, hymenopteraBatch, maxAbsDiff, MOBILENET_V1, MOBILENET_V2, PRE, snapshot } from './net-helpers';

let images: tf.Tensor4D;

before(async () => {
  await initBackend();
  images = await hymenopteraBatch(4);
});

for (const [label, file] of [['MobileNetV2 0.35', MOBILENET_V2], ['MobileNet v1 to conv_pw_12', MOBILENET_V1]] as const) {
  test(`${label}: forwardFrozen matches tf.layers predict on real photos`, async () => {
    const net = await loadBackbone(file, { id: label, preprocessing: PRE });
    const model = await tf.loadLayersModel(fileIOHandler(file));
    const ours = net.forwardFrozen(images);
    const ref = model.predict(images) as tf.Tensor;
    assert.deepEqual(ours.shape, ref.shape);
    assert.deepEqual(ours.shape.slice(1), net.outputShape);
    // Float32 rounding of a different (folded) order of operations, relative to the output range (up to 6).
    const scale = Math.max(1, tf.tidy(() => tf.max(tf.abs(ref)).dataSync()[0]));
    assert.ok(maxAbsDiff(ours, ref) < 3e-5 * scale, `max abs diff ${maxAbsDiff(ours, ref)} (outputs up to ${scale})`);
    tf.dispose([ours, ref]);
    model.dispose();
    net.dispose();
  });

  test(`${label}: groups are ordered and cover every weighted layer once`, async () => {
    const net = await loadBackbone(file, { id: label, preprocessing: PRE });
    const json = JSON.parse(fs.readFileSync(file, 'utf8'));
    const layers: { name: string; class_name: string }[] = (json.modelTopology.model_config ?? json.modelTopology).config.layers;
    const order = new Map(layers.map((l, i) => [l.name, i]));
    const weighted = layers.filter((l) => ['Conv2D', 'DepthwiseConv2D', 'BatchNormalization', 'Dense'].includes(l.class_name)).map((l) => l.name);
    const seen = net.groups.flatMap((g) => g.layers);
    for (const name of weighted) assert.equal(seen.filter((n) => n === name).length, 1, `${name} in exactly one group`);
    assert.equal(new Set(seen).size, seen.length);
    for (let i = 1; i < seen.length; i++) assert.ok(order.get(seen[i])! > order.get(seen[i - 1])!, `${seen[i]} after ${seen[i - 1]}`);
    assert.equal(net.groups[0].name, 'stem');
    assert.ok(net.groups.every((g) => g.paramCount > 0));
    if (file === MOBILENET_V2) {
      assert.deepEqual(net.groups.map((g) => g.name), ['stem', ...Array.from({ length: 16 }, (_, i) => `block_${i + 1}`), 'top']);
      assert.deepEqual(net.groups[0].layers.slice(0, 2), ['Conv1_pad', 'Conv1']);
      assert.deepEqual(net.groups[17].layers, ['Conv_1', 'Conv_1_bn', 'out_relu']);
    } else {
      assert.deepEqual(net.groups.map((g) => g.name), ['stem', ...Array.from({ length: 12 }, (_, i) => `block_${i + 1}`)]);
      assert.deepEqual(net.groups[1].layers, ['conv_dw_1', 'conv_dw_1_bn', 'conv_dw_1_relu', 'conv_pw_1', 'conv_pw_1_bn', 'conv_pw_1_relu']);
    }
    // Running group by group gives the same output as one pass.
    const whole = net.forwardFrozen(images);
    let x: tf.Tensor = images;
    for (let g = 0; g < net.groups.length; g++) {
      const y = net.forwardFrozen(x, { from: g, to: g + 1 });
      assert.deepEqual(y.shape.slice(1), net.boundaryShape(g + 1));
      if (x !== images) x.dispose();
      x = y;
    }
    assert.equal(maxAbsDiff(whole, x), 0);
    tf.dispose([whole, x]);
    net.dispose();
  });
}

test('forwardTrainable with every group trainable equals forwardFrozen (BatchNorm in inference mode)', async () => {
  const net = await loadBackbone(MOBILENET_V2, { id: 'v2', preprocessing: PRE });
  const frozen = net.forwardFrozen(images);
  net.setTrainable(new Set(net.groups.map((_, i) => i)));
  const trainable = net.forwardTrainable(images, { training: true });
  assert.ok(maxAbsDiff(frozen, trainable) < 1e-4, `max abs diff ${maxAbsDiff(frozen, trainable)}`);
  // Frozen forward of trainable groups folds their current variables on the fly.
  const again = net.forwardFrozen(images);
  assert.ok(maxAbsDiff(frozen, again) < 1e-4);
  tf.dispose([frozen, trainable, again]);
  net.dispose();
});

function trainStep(net: BackboneNet, x: tf.Tensor, from: number, lr: number): void {
  const vars = net.groups.flatMap((_, i) => net.groupVariables(i));
  const { grads, value } = tf.variableGrads(() => {
    // The frozen prefix runs inside the closure on purpose: it must record nothing.
    const features = net.forwardFrozen(x, { to: from });
    const y = net.forwardTrainable(features, { from, training: true });
    return tf.mean(tf.square(tf.sub(y, 1))) as tf.Scalar;
  }, vars);
  tf.tidy(() => {
    for (const v of vars) v.assign(tf.sub(v, tf.mul(grads[v.name], lr)));
  });
  tf.dispose([value, ...Object.values(grads)]);
}

test('a frozen group is bit-identical after a training step on the groups after it', async () => {
  const net = await loadBackbone(MOBILENET_V2, { id: 'v2', preprocessing: PRE });
  const from = net.groups.length - 2; // block_16 + top
  net.setTrainable(new Set([from, from + 1]), { trainBatchNormStats: true });
  assert.ok(net.groupVariables(from).length > 0);
  assert.equal(net.groupVariables(0).length, 0);
  assert.ok(net.groupVariables(from).every((v) => v.trainable));
  const kernel = net.groupVariables(from + 1).find((v) => v.name.endsWith('Conv_1/kernel'))!;
  assert.equal(net.isNoDecay(kernel), false);
  assert.ok(net.groupVariables(from + 1).some((v) => net.isNoDecay(v)));
  const before = snapshot(net.getWeights());
  tf.dispose(net.forwardFrozen(images, { to: from })); // builds the folded cache of the frozen groups
  const tensorsBefore = tf.memory().numTensors;
  trainStep(net, images, from, 0.01);
  assert.equal(tf.memory().numTensors, tensorsBefore, 'no tensors leak from a step');
  const after = snapshot(net.getWeights());
  const frozenLayers = new Set(net.groups.slice(0, from).flatMap((g) => g.layers));
  let checked = 0;
  for (const [name, value] of before) {
    const layer = name.split('/')[0];
    if (frozenLayers.has(layer)) {
      assert.ok(bitsEqual(value, after.get(name)!), `${name} unchanged`);
      checked++;
    }
  }
  assert.ok(checked > 200, `${checked} frozen weights checked (incl. BN moving mean/variance)`);
  assert.ok(!bitsEqual(before.get('Conv_1/kernel')!, after.get('Conv_1/kernel')!), 'trainable kernel moved');
  assert.ok(!bitsEqual(before.get('Conv_1_bn/moving_mean')!, after.get('Conv_1_bn/moving_mean')!), 'trained BN statistics moved');
  // Freezing again folds the trained weights: frozen and trainable paths still agree.
  const trained = net.forwardTrainable(images);
  net.setTrainable(new Set());
  const refolded = net.forwardFrozen(images);
  assert.ok(maxAbsDiff(trained, refolded) < 1e-4);
  tf.dispose([trained, refolded]);
  net.dispose();
});

test('weights round-trip through getWeights/setWeights and an exported tf.LayersModel', async () => {
  const net = await loadBackbone(MOBILENET_V2, { id: 'v2', preprocessing: PRE });
  const weights = net.getWeights();
  // Perturb one frozen conv so a stale fold would show.
  const name = 'block_16_project/kernel';
  const changed = tf.mul(weights.get(name)!, 1.5);
  net.setWeights(new Map([[name, changed]]));
  const ours = net.forwardFrozen(images);
  const current = net.getWeights();
  const model = await tf.loadLayersModel(tf.io.fromMemory(await encodeBackboneArtifacts(net.modelTopology(), current)));
  const ref = model.predict(images) as tf.Tensor;
  // The 1.5x kernel makes activations larger, so float32 rounding differs a little more.
  assert.ok(maxAbsDiff(ours, ref) < 3e-4, `max abs diff ${maxAbsDiff(ours, ref)}`);
  assert.throws(() => net.setWeights(new Map([['nope/kernel', changed]])), /Unknown backbone weight "nope\/kernel"/);
  assert.throws(() => net.setWeights(new Map([[name, tf.zeros([1])]])), new RegExp(`has shape \\[1\\], expected \\[${changed.shape.join(', ')}\\]`));
  tf.dispose([ours, ref, changed, ...weights.values(), ...current.values()]);
  model.dispose();
  net.dispose();
});
