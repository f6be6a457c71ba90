/**
 * A trained classifier rebuilt from a checkpoint: the backbone (all groups frozen, so it
 * runs through the folded inference path) plus the head. Evaluation, prediction and the
 * export's parity check all predict through here, so they agree by construction.
 */
import * as tf from '@tensorflow/tfjs';
import type { Preprocessing } from '../../shared/preprocessing';
import { AppError } from '../../shared/errors';
import { loadBackbone } from './net';
import type { BackboneNet } from './net/types';
import { Head } from './heads';
import { checkpointExists, dataToTensors, loadCheckpoint } from './checkpoint';
import type { CheckpointMeta } from './trainer';
import { pixelsToTensor } from './data';
import type { TrainConfig } from './config';

export interface Classifier {
  net: BackboneNet;
  head: Head;
  classNames: string[];
  config: TrainConfig;
  preprocessing: Preprocessing;
  /** Probabilities (n x classes, row-major) for uint8 NHWC eval-view pixels. */
  predict(pixels: Uint8Array, n: number, opts?: { tta?: 'none' | 'flip'; batch?: number }): Float32Array;
  dispose(): void;
}

/** Rebuild backbone + head from a checkpoint folder written by the trainer. */
export async function loadClassifier(o: { modelJson: string; backboneId: string; preprocessing: Preprocessing; checkpointDir: string }): Promise<Classifier> {
  if (!checkpointExists(o.checkpointDir)) {
    throw new AppError('no_checkpoint', `No checkpoint at ${o.checkpointDir}: the run saved none (it may have failed before its first epoch ended). Train it again or continue it.`);
  }
  const cp = loadCheckpoint<CheckpointMeta>(o.checkpointDir);
  const net = await loadBackbone(o.modelJson, { id: o.backboneId, preprocessing: o.preprocessing });
  const netW = dataToTensors(cp.net);
  net.setWeights(netW);
  for (const t of netW.values()) t.dispose();
  net.setTrainable(new Set());
  const config = cp.meta.config;
  const classNames = cp.meta.classNames;
  const head = new Head(config.head, net.outputShape, classNames.length, 0);
  const headW = dataToTensors(cp.head);
  head.setWeights(headW);
  for (const t of headW.values()) t.dispose();
  const size = o.preprocessing.size;
  const c = classNames.length;
  return {
    net,
    head,
    classNames,
    config,
    preprocessing: o.preprocessing,
    predict(pixels, n, opts = {}) {
      const batch = opts.batch ?? 32;
      const per = size * size * 3;
      const out = new Float32Array(n * c);
      for (let i = 0; i < n; i += batch) {
        const m = Math.min(batch, n - i);
        const probs = tf.tidy(() => {
          const x = pixelsToTensor(pixels.subarray(i * per, (i + m) * per), m, size, o.preprocessing.scaling);
          const run = (input: tf.Tensor) => tf.softmax(head.apply(net.forwardFrozen(input), { training: false }));
          if (opts.tta === 'flip') {
            const flipped = tf.reverse(x, 2);
            return run(x).add(run(flipped)).div(2);
          }
          return run(x);
        });
        out.set(probs.dataSync() as Float32Array, i * c);
        probs.dispose();
      }
      return out;
    },
    dispose() {
      head.dispose();
      net.dispose();
    },
  };
}
