/**
 * Entry point of the backbone executor: load a Keras-format tfjs LayersModel folder and
 * run it with our own graph executor (see backbone.ts), never through tf.layers.
 */
import type * as tf from '@tensorflow/tfjs';
import type { Preprocessing } from '../../../shared/preprocessing';
import { decodeWeightMap, loadKerasModelArtifacts } from './artifacts';
import { KerasBackbone } from './backbone';
import { compileNet } from './compile';
import { splitGroups } from './groups';
import { parseTopology } from './topology';
import type { BackboneNet } from './types';

export type { BackboneNet, BackboneForwardOptions, LayerGroup } from './types';
export { loadKerasModelArtifacts, decodeWeightMap, fileIOHandler, encodeBackboneArtifacts } from './artifacts';
export { KerasBackbone } from './backbone';

export interface LoadBackboneOptions {
  id: string;
  preprocessing: Preprocessing;
  /** Hand-written fused gradients for conv+BN+ReLU6 units (default true; false = tfjs autodiff). */
  fusedUnits?: boolean;
}

/**
 * Load a backbone from its model.json (weight shards next to it). Every group starts
 * frozen; call `setTrainable` to train some. Throws AppError for unsupported layers,
 * naming the layer and its class.
 */
export async function loadBackbone(modelJsonPath: string, opts: LoadBackboneOptions): Promise<BackboneNet> {
  const { artifacts, modelTopology, modelConfig } = loadKerasModelArtifacts(modelJsonPath);
  const { layers, input, output } = parseTopology(modelConfig);
  const groups = splitGroups(layers, output);
  const weights = decodeWeightMap(artifacts, modelJsonPath);
  try {
    const net = compileNet(layers, input, output, groups, weights as Map<string, tf.Tensor>, opts.preprocessing.size);
    return new KerasBackbone(net, layers, groups, weights, modelTopology, opts);
  } catch (err) {
    for (const t of weights.values()) t.dispose();
    throw err;
  }
}
