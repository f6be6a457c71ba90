/**
 * Export a trained classifier as a plain tfjs LayersModel folder: the backbone's Keras
 * topology with the head appended as Keras layers (ending in softmax), one weights file,
 * labels.json, preprocessing.json and a README. Then the parity check: load the folder back
 * the way a user would (tf.loadLayersModel) and compare its predictions with the app's.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Preprocessing } from '../../shared/preprocessing';
import { scalingAffine } from '../../shared/preprocessing';
import { functionalConfig, fileIOHandler } from './net/artifacts';
import type { KerasLayerSpec } from './heads';

type Inbound = [string, number, number, Record<string, unknown>];

/** The backbone topology with the head appended after its output layer. */
export function appendHead(modelTopology: Record<string, unknown>, head: KerasLayerSpec[], name = 'finetuned'): Record<string, unknown> {
  const topo = structuredClone(modelTopology);
  const cfg = functionalConfig(topo, 'the backbone');
  const backboneOut = cfg.output_layers[0][0];
  for (const l of head) {
    const inbound: Inbound[] = l.inbound.map((src) => [src === '' ? backboneOut : src, 0, 0, {}]);
    cfg.layers.push({ name: l.config.name as string, class_name: l.className, config: l.config, inbound_nodes: [inbound] });
  }
  cfg.output_layers = [[head[head.length - 1].config.name as string, 0, 0]];
  cfg.name = name;
  return topo;
}

export interface ExportInput {
  outDir: string;
  modelTopology: Record<string, unknown>;
  backboneWeights: Map<string, tf.Tensor>;
  head: KerasLayerSpec[];
  classNames: string[];
  preprocessing: Preprocessing;
  /** Recorded in README/metadata. */
  meta: Record<string, unknown>;
}

const README = (labels: string[], p: Preprocessing) => `# Exported classifier (Finetune Studio)

A TensorFlow.js LayersModel: \`model.json\` + \`weights.bin\`, classes in \`labels.json\`,
input preprocessing in \`preprocessing.json\`. The model ends in softmax: it returns one
probability per class, in the order of labels.json (${labels.join(', ')}).

## Preprocessing (do exactly this, or predictions will differ)
1. Decode the image as RGB (apply EXIF orientation; drop alpha).
2. Resize so the shorter side is round(${p.size} / ${p.cropFraction}) = ${Math.round(p.size / p.cropFraction)} px (bilinear), then crop the centre ${p.size}x${p.size}.
3. Scale pixels: ${p.scaling.kind === 'minus-one-to-one' ? 'x / 127.5 - 1 (range [-1, 1])' : p.scaling.kind === 'zero-to-one' ? 'x / 255' : `(x / 255 - mean) / std with mean ${JSON.stringify((p.scaling as { mean: number[] }).mean)} and std ${JSON.stringify((p.scaling as { std: number[] }).std)}`}.
4. Batch as NHWC float32: shape [n, ${p.size}, ${p.size}, 3].

## Load
Browser: \`const model = await tf.loadLayersModel('path/to/model.json');\`
Node (tfjs-node): \`await tf.loadLayersModel('file://path/to/model.json')\`
Then \`model.predict(batch)\` gives [n, ${labels.length}] probabilities.

Or with the app's CLI: \`finetune predict <this folder> image.jpg ...\`
`;

/** Write the export folder (atomically: a temp folder renamed into place). Returns the file names. */
export async function writeExport(input: ExportInput): Promise<string[]> {
  const topology = appendHead(input.modelTopology, input.head);
  const named: tf.NamedTensorMap = {};
  for (const [k, v] of input.backboneWeights) named[k] = v;
  for (const l of input.head) for (const w of l.weights) named[w.name] = w.tensor;
  const { data, specs } = await tf.io.encodeWeights(named);
  const tmp = `${input.outDir}.partial-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  const modelJson = {
    format: 'layers-model',
    generatedBy: 'Finetune Studio',
    convertedBy: null,
    modelTopology: topology,
    weightsManifest: [{ paths: ['weights.bin'], weights: specs }],
  };
  fs.writeFileSync(path.join(tmp, 'model.json'), JSON.stringify(modelJson));
  fs.writeFileSync(path.join(tmp, 'weights.bin'), Buffer.from(data as ArrayBuffer));
  fs.writeFileSync(path.join(tmp, 'labels.json'), JSON.stringify(input.classNames, null, 2));
  fs.writeFileSync(
    path.join(tmp, 'preprocessing.json'),
    JSON.stringify({ ...input.preprocessing, evalResizeShorterSide: Math.round(input.preprocessing.size / input.preprocessing.cropFraction), layout: 'NHWC', dtype: 'float32' }, null, 2),
  );
  fs.writeFileSync(path.join(tmp, 'metadata.json'), JSON.stringify(input.meta, null, 2));
  fs.writeFileSync(path.join(tmp, 'README.md'), README(input.classNames, input.preprocessing));
  fs.rmSync(input.outDir, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(input.outDir), { recursive: true });
  fs.renameSync(tmp, input.outDir);
  return fs.readdirSync(input.outDir).sort();
}

export interface LoadedExport {
  model: tf.LayersModel;
  labels: string[];
  preprocessing: Preprocessing;
}

/** Load an export folder as a user would: model.json through tf.loadLayersModel. */
export async function loadExport(dir: string): Promise<LoadedExport> {
  const modelJson = path.join(dir, 'model.json');
  for (const f of ['model.json', 'labels.json', 'preprocessing.json']) {
    if (!fs.existsSync(path.join(dir, f))) throw new Error(`${dir} is not a Finetune Studio export: ${f} is missing.`);
  }
  const model = await tf.loadLayersModel(fileIOHandler(modelJson));
  const labels = JSON.parse(fs.readFileSync(path.join(dir, 'labels.json'), 'utf8')) as string[];
  const preprocessing = JSON.parse(fs.readFileSync(path.join(dir, 'preprocessing.json'), 'utf8')) as Preprocessing;
  return { model, labels, preprocessing };
}

/** Scale uint8 NHWC pixels to the model's float input, from its preprocessing.json. */
export function pixelsToInput(pixels: Uint8Array, n: number, p: Preprocessing): tf.Tensor4D {
  const { mul, add } = scalingAffine(p.scaling);
  return tf.tidy(() => {
    const x = tf.tensor4d(pixels, [n, p.size, p.size, 3], 'int32').toFloat();
    return x.mul(tf.tensor1d(mul)).add(tf.tensor1d(add)) as tf.Tensor4D;
  });
}

/** Predict probabilities with a loaded export, in batches. */
export function predictWithExport(exp: LoadedExport, pixels: Uint8Array, n: number, batch = 32): Float32Array {
  const c = exp.labels.length;
  const out = new Float32Array(n * c);
  const per = exp.preprocessing.size * exp.preprocessing.size * 3;
  for (let i = 0; i < n; i += batch) {
    const m = Math.min(batch, n - i);
    const probs = tf.tidy(() => exp.model.predict(pixelsToInput(pixels.subarray(i * per, (i + m) * per), m, exp.preprocessing)) as tf.Tensor);
    out.set(probs.dataSync() as Float32Array, i * c);
    probs.dispose();
  }
  return out;
}

export interface ParityResult {
  ok: boolean;
  images: number;
  mismatches: number;
  maxAbsDiff: number;
  message: string;
}

/**
 * Compare the app's probabilities with the export's on the same images. Passes when every
 * top class agrees and probabilities differ by at most `tolerance`.
 */
export function compareParity(app: Float32Array, exported: Float32Array, numClasses: number, tolerance = 1e-3): ParityResult {
  const n = app.length / numClasses;
  let mismatches = 0;
  let maxAbsDiff = 0;
  for (let i = 0; i < n; i++) {
    let a = 0;
    let b = 0;
    for (let j = 0; j < numClasses; j++) {
      const k = i * numClasses + j;
      maxAbsDiff = Math.max(maxAbsDiff, Math.abs(app[k] - exported[k]));
      if (app[k] > app[i * numClasses + a]) a = j;
      if (exported[k] > exported[i * numClasses + b]) b = j;
    }
    if (a !== b) mismatches++;
  }
  const ok = mismatches === 0 && maxAbsDiff <= tolerance;
  const message = ok
    ? `Parity check passed: the export predicts the same class as the app on all ${n} validation images (largest probability difference ${maxAbsDiff.toExponential(2)}).`
    : `Parity check FAILED: ${mismatches} of ${n} images get a different class, largest probability difference ${maxAbsDiff.toExponential(2)} (tolerance ${tolerance}).`;
  return { ok, images: n, mismatches, maxAbsDiff, message };
}
