/**
 * A MobileNetV2 of any width (alpha) built offline from the 0.35 model folder's Keras
 * topology: same layer names and graph as keras.applications.MobileNetV2(alpha,
 * include_top=False), with every Conv2D's filter count recomputed by Keras' own rule
 * (_make_divisible(..., 8); expand = 6 x the block's input channels; Conv_1 1280 unless
 * alpha > 1). tfjs-layers builds the model from that JSON, which checks every shape, and
 * initialises the weights (Glorot convs, BatchNorm gamma 1, beta 0, mean 0, variance 1).
 *
 * The weights are synthetic, not ImageNet: only the alpha-0.35 weights are available
 * offline. Memory and speed of training do not depend on weight values, so this is fit
 * for memory and throughput measurements and nothing else (accuracy is meaningless).
 * It lives with the benches, not in the engine: the app resolves the real 1.0 weights
 * through its registry (download or mirror) and never needs to invent a backbone.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';

/** Parameters (trainable + BatchNorm moving statistics) of Keras MobileNetV2 no-top, by alpha. */
export const KERAS_PARAMS: Record<string, number> = { '0.35': 410_208, '0.5': 706_224, '0.75': 1_382_064, '1.0': 2_257_984 };

/** Keras applications' `_make_divisible` (from the original TF-slim MobileNet code). */
export function makeDivisible(v: number, divisor = 8): number {
  let next = Math.max(divisor, Math.floor((v + divisor / 2) / divisor) * divisor);
  if (next < 0.9 * v) next += divisor;
  return next;
}

/** Output channels of each block's projection (expanded_conv = block 0), before alpha. */
const BLOCK_FILTERS = [16, 24, 24, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96, 160, 160, 160, 320];
const EXPANSION = 6;

/** Conv2D filter counts by Keras layer name for MobileNetV2(alpha, include_top=False). */
export function mobilenetV2Filters(alpha: number): Map<string, number> {
  const filters = new Map<string, number>();
  let channels = makeDivisible(32 * alpha);
  filters.set('Conv1', channels);
  BLOCK_FILTERS.forEach((f, k) => {
    // Keras truncates before rounding: _make_divisible(int(filters * alpha), 8).
    const out = makeDivisible(Math.trunc(f * alpha));
    if (k === 0) filters.set('expanded_conv_project', out);
    else {
      filters.set(`block_${k}_expand`, EXPANSION * channels);
      filters.set(`block_${k}_project`, out);
    }
    channels = out;
  });
  filters.set('Conv_1', alpha > 1 ? makeDivisible(1280 * alpha) : 1280);
  return filters;
}

interface LayerJson {
  name: string;
  class_name: string;
  config: Record<string, unknown>;
}

/** The template's topology with every Conv2D's filters set for `alpha`. */
export function mobilenetV2Topology(templateModelJson: string, alpha: number): Record<string, unknown> {
  const topology = structuredClone(JSON.parse(fs.readFileSync(templateModelJson, 'utf8')).modelTopology) as { config: { name?: string; layers: LayerJson[] } };
  const filters = mobilenetV2Filters(alpha);
  const seen = new Set<string>();
  for (const l of topology.config.layers) {
    if (l.class_name !== 'Conv2D') continue;
    const f = filters.get(l.name);
    if (f === undefined) throw new Error(`${templateModelJson}: Conv2D "${l.name}" is not a MobileNetV2 layer; the template must be a Keras MobileNetV2 no-top.`);
    l.config.filters = f;
    seen.add(l.name);
  }
  const missing = [...filters.keys()].filter((n) => !seen.has(n));
  if (missing.length) throw new Error(`${templateModelJson} lacks MobileNetV2 layers ${missing.join(', ')}.`);
  topology.config.name = `mobilenetv2_${alpha.toFixed(2)}_224`;
  return topology;
}

export interface SynthesisedBackbone {
  modelJson: string;
  alpha: number;
  params: number;
  weightBytes: number;
}

/**
 * Write `<dir>/model.json` + `weights.bin` (and a preprocessing.json: 224 px, [-1, 1]) for a
 * MobileNetV2 of width `alpha` with synthetic weights, built from `templateModelJson`.
 */
export async function synthesiseMobilenetV2(templateModelJson: string, alpha: number, dir: string, seed = 0): Promise<SynthesisedBackbone> {
  const topology = mobilenetV2Topology(templateModelJson, alpha);
  // Seeded initialisers, so two syntheses give the same bytes.
  let s = seed;
  for (const l of (topology as { config: { layers: LayerJson[] } }).config.layers) {
    for (const key of ['kernel_initializer', 'depthwise_initializer']) {
      const init = l.config[key] as { config?: Record<string, unknown> } | undefined;
      if (init?.config) init.config.seed = s++;
    }
  }
  const model = (await tf.models.modelFromJSON({ modelTopology: topology } as never)) as tf.LayersModel;
  try {
    let saved: tf.io.ModelArtifacts | null = null;
    await model.save(tf.io.withSaveHandler(async (a) => {
      saved = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }));
    const a = saved! as tf.io.ModelArtifacts;
    fs.mkdirSync(dir, { recursive: true });
    const weightData = Buffer.from(a.weightData as ArrayBuffer);
    fs.writeFileSync(path.join(dir, 'weights.bin'), weightData);
    const modelJson = path.join(dir, 'model.json');
    fs.writeFileSync(
      modelJson,
      JSON.stringify({
        modelTopology: a.modelTopology,
        format: 'layers-model',
        generatedBy: a.generatedBy,
        convertedBy: `bench/lib/mobilenet-v2-synth.ts: synthetic (randomly initialised, not ImageNet) MobileNetV2 alpha ${alpha}`,
        weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }],
      }),
    );
    fs.writeFileSync(path.join(dir, 'preprocessing.json'), JSON.stringify({ size: 224, scaling: { kind: 'minus-one-to-one' } }));
    const params = (a.weightSpecs ?? []).reduce((n, w) => n + w.shape.reduce((x, y) => x * y, 1), 0);
    return { modelJson, alpha, params, weightBytes: weightData.length };
  } finally {
    model.dispose();
  }
}
