import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../src/main/engine/backend';
import { fileIOHandler, loadBackbone } from '../../../src/main/engine/net/index';
import { AppError } from '../../../src/shared/errors';
import { maxAbsDiff, MOBILENET_V2, PRE } from './net-helpers';

before(async () => {
  await initBackend();
});

/** Save a tf.LayersModel as a model folder (model.json + weights.bin) in a temp dir. */
async function saveToFolder(model: tf.LayersModel): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'net-graph-'));
  await model.save(tf.io.withSaveHandler(async (a) => {
    fs.writeFileSync(path.join(dir, 'weights.bin'), Buffer.from(a.weightData as ArrayBuffer));
    fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify({ modelTopology: a.modelTopology, format: a.format, weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }] }));
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
  return path.join(dir, 'model.json');
}

/** A small residual net with names no naming rule knows, so groups come from the graph. */
function residualNet(): tf.LayersModel {
  const input = tf.input({ shape: [32, 32, 3], name: 'img' });
  let x = tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', useBias: true, activation: 'relu', name: 'c0' }).apply(input) as tf.SymbolicTensor;
  for (let k = 1; k <= 3; k++) {
    let y = tf.layers.conv2d({ filters: 16, kernelSize: 1, useBias: false, name: `e${k}` }).apply(x) as tf.SymbolicTensor;
    y = tf.layers.batchNormalization({ name: `e${k}bn`, movingMeanInitializer: 'randomNormal', movingVarianceInitializer: 'ones', gammaInitializer: 'randomUniform', betaInitializer: 'randomNormal' }).apply(y) as tf.SymbolicTensor;
    y = tf.layers.reLU({ maxValue: 6, name: `e${k}r` }).apply(y) as tf.SymbolicTensor;
    y = tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', useBias: false, name: `d${k}` }).apply(y) as tf.SymbolicTensor;
    y = tf.layers.batchNormalization({ name: `d${k}bn`, movingMeanInitializer: 'randomNormal' }).apply(y) as tf.SymbolicTensor;
    y = tf.layers.activation({ activation: 'relu6', name: `d${k}r` }).apply(y) as tf.SymbolicTensor;
    y = tf.layers.conv2d({ filters: 8, kernelSize: 1, useBias: false, name: `p${k}` }).apply(y) as tf.SymbolicTensor;
    x = tf.layers.add({ name: `add${k}` }).apply([x, y]) as tf.SymbolicTensor;
  }
  x = tf.layers.zeroPadding2d({ padding: [[0, 1], [0, 1]], name: 'pad' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ filters: 12, kernelSize: 3, strides: 2, padding: 'valid', useBias: false, name: 'last' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.maxPooling2d({ poolSize: 2, name: 'mp' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.dropout({ rate: 0.5, name: 'drop' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.dense({ units: 5, activation: 'tanh', name: 'fc' }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: x });
}

test('an unknown architecture splits at Add boundaries and runs like tf.layers', async () => {
  const model = residualNet();
  const file = await saveToFolder(model);
  const net = await loadBackbone(file, { id: 'residual', preprocessing: { ...PRE, size: 32 } });
  assert.deepEqual(net.groups.map((g) => g.name), ['group_1', 'group_2', 'group_3', 'group_4']);
  assert.equal(net.groups[0].layers[net.groups[0].layers.length - 1], 'add1');
  assert.deepEqual(net.boundaryShape(1), [16, 16, 8]);
  assert.deepEqual(net.outputShape, [5]);
  const x = tf.randomUniform([3, 32, 32, 3], -1, 1, 'float32', 7);
  const ref = (await tf.loadLayersModel(fileIOHandler(file))).predict(x) as tf.Tensor;
  const ours = net.forwardFrozen(x);
  assert.ok(maxAbsDiff(ours, ref) < 1e-5, `max abs diff ${maxAbsDiff(ours, ref)}`);
  net.setTrainable(new Set([1, 3]));
  const trainable = net.forwardTrainable(x);
  assert.ok(maxAbsDiff(trainable, ref) < 1e-5);
  tf.dispose([x, ref, ours, trainable]);
  net.dispose();
  model.dispose();
  fs.rmSync(path.dirname(file), { recursive: true });
});

test('a chain without merges splits into about eight equal chunks', async () => {
  const layers: tf.layers.Layer[] = [tf.layers.conv2d({ inputShape: [16, 16, 3], filters: 4, kernelSize: 3, padding: 'same', name: 'first' })];
  for (let i = 0; i < 15; i++) layers.push(tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: `conv_${String.fromCharCode(97 + i)}` }));
  const model = tf.sequential({ layers });
  const file = await saveToFolder(model);
  const net = await loadBackbone(file, { id: 'chain', preprocessing: { ...PRE, size: 16 } });
  assert.equal(net.groups.length, 8);
  assert.ok(net.groups.every((g) => g.layers.length === 2), net.groups.map((g) => g.layers.join('+')).join(' | '));
  const x = tf.randomNormal([2, 16, 16, 3], 0, 1, 'float32', 3);
  const ref = model.predict(x) as tf.Tensor;
  const ours = net.forwardFrozen(x);
  assert.ok(maxAbsDiff(ours, ref) < 1e-4);
  tf.dispose([x, ref, ours]);
  net.dispose();
  model.dispose();
  fs.rmSync(path.dirname(file), { recursive: true });
});

test('an unsupported layer class fails with the layer name and class', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'net-graph-'));
  const json = JSON.parse(fs.readFileSync(MOBILENET_V2, 'utf8'));
  const layer = json.modelTopology.config.layers.find((l: { name: string }) => l.name === 'block_3_depthwise');
  layer.class_name = 'SeparableConv2DX';
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
  fs.copyFileSync(path.join(path.dirname(MOBILENET_V2), 'weights.bin'), path.join(dir, 'weights.bin'));
  await assert.rejects(loadBackbone(path.join(dir, 'model.json'), { id: 'bad', preprocessing: PRE }), (err: unknown) => {
    assert.ok(err instanceof AppError);
    assert.equal(err.code, 'unsupported_layer');
    assert.match(err.message, /Layer "block_3_depthwise" has class "SeparableConv2DX"/);
    assert.match(err.message, /Supported classes: InputLayer, Conv2D/);
    return true;
  });
  await assert.rejects(loadBackbone(path.join(dir, 'missing.json'), { id: 'bad', preprocessing: PRE }), /Cannot read model file .*missing\.json/);
  fs.rmSync(dir, { recursive: true });
});
