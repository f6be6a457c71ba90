/**
 * Reads a tfjs LayersModel folder (model.json + weight shards) from disk. Pure tfjs has no
 * `tf.io.fileSystem`, so this is the one place that turns files into ModelArtifacts and
 * named weight tensors; tf.loadLayersModel(tf.io.fromMemory(artifacts)) accepts the result.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { AppError } from '../../../shared/errors';
import { functionalConfig, type KerasModelConfig } from './topology';

export { functionalConfig, type KerasLayerJson, type KerasModelConfig } from './topology';

interface WeightsManifestGroup {
  paths: string[];
  weights: tf.io.WeightsManifestEntry[];
}

/** The parts of model.json the executor needs, plus the artifacts tfjs understands. */
export interface KerasModelArtifacts {
  artifacts: tf.io.ModelArtifacts;
  /** modelTopology as stored (Keras 2: `{class_name, config}` or `{model_config: {...}}`). */
  modelTopology: Record<string, unknown>;
  /** The functional model config: `{name, layers, input_layers, output_layers}`. */
  modelConfig: KerasModelConfig;
}

function readJson(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new AppError('model_not_found', `Cannot read model file ${file} (${(err as Error).message}). Pass the path of a tfjs LayersModel's model.json.`);
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new AppError('model_invalid', `${file} is not valid JSON (${(err as Error).message}). Pass the model.json of a tfjs LayersModel.`);
  }
}

/**
 * Read model.json and every weight shard it lists into ModelArtifacts (weights still
 * encoded; `decodeWeightMap` turns them into tensors). Throws AppError naming the file.
 */
export function loadKerasModelArtifacts(modelJsonPath: string): KerasModelArtifacts {
  const json = readJson(modelJsonPath);
  const modelTopology = json.modelTopology as Record<string, unknown> | undefined;
  const manifest = json.weightsManifest as WeightsManifestGroup[] | undefined;
  if (!modelTopology || !Array.isArray(manifest)) {
    throw new AppError('model_invalid', `${modelJsonPath} has no modelTopology/weightsManifest, so it is not a tfjs LayersModel (a graph model cannot be fine-tuned). Convert the Keras model with tensorflowjs_converter --output_format tfjs_layers_model.`);
  }
  const modelConfig = functionalConfig(modelTopology, modelJsonPath);
  const dir = path.dirname(modelJsonPath);
  const specs: tf.io.WeightsManifestEntry[] = [];
  const buffers: Buffer[] = [];
  for (const group of manifest) {
    for (const p of group.paths) {
      const file = path.join(dir, decodeURIComponent(p));
      try {
        buffers.push(fs.readFileSync(file));
      } catch (err) {
        throw new AppError('model_incomplete', `Weight shard ${file} listed in ${modelJsonPath} cannot be read (${(err as Error).message}). Copy the whole model folder again.`);
      }
    }
    specs.push(...group.weights);
  }
  const all = Buffer.concat(buffers);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer;
  const artifacts: tf.io.ModelArtifacts = {
    modelTopology,
    weightSpecs: specs,
    weightData,
    format: json.format as string | undefined,
    generatedBy: json.generatedBy as string | undefined,
    convertedBy: (json.convertedBy as string | null | undefined) ?? undefined,
  };
  return { artifacts, modelTopology, modelConfig };
}

/**
 * Decode the weights of loaded artifacts into tensors keyed by Keras weight name
 * ("layer/kernel"); quantised shards are dequantised. The caller owns the tensors.
 */
export function decodeWeightMap(artifacts: tf.io.ModelArtifacts, where = 'the model'): Map<string, tf.Tensor> {
  let named: tf.NamedTensorMap;
  try {
    named = tf.io.decodeWeights(artifacts.weightData as ArrayBuffer, artifacts.weightSpecs ?? []);
  } catch (err) {
    throw new AppError('model_incomplete', `The weights of ${where} do not match its manifest (${(err as Error).message}). Copy the whole model folder again.`);
  }
  const weights = new Map<string, tf.Tensor>();
  // Keras sometimes keeps TensorFlow's ":0" output suffix in weight names.
  for (const [name, t] of Object.entries(named)) weights.set(name.replace(/:\d+$/, ''), t);
  return weights;
}

/** A tfjs IOHandler over a model folder on disk, for tf.loadLayersModel. */
export function fileIOHandler(modelJsonPath: string): tf.io.IOHandler {
  return {
    load: async () => loadKerasModelArtifacts(modelJsonPath).artifacts,
  };
}

/**
 * ModelArtifacts of a backbone's current weights under its Keras topology, ready for
 * tf.loadLayersModel(tf.io.fromMemory(...)) or for writing a model folder.
 */
export async function encodeBackboneArtifacts(modelTopology: unknown, weights: Map<string, tf.Tensor>): Promise<tf.io.ModelArtifacts> {
  const named: tf.NamedTensorMap = Object.fromEntries(weights);
  const { data, specs } = await tf.io.encodeWeights(named);
  return { modelTopology: modelTopology as object, weightSpecs: specs, weightData: data, format: 'layers-model', generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`, convertedBy: null };
}
