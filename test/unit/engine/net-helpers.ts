/** Shared fixtures for the backbone executor tests: real backbones and real photos. */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import { MINUS_ONE_TO_ONE, type Preprocessing } from '../../../src/shared/preprocessing';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const shared = path.resolve(repoRoot, '../shared');
export const MOBILENET_V2 = path.join(shared, 'models/teachable-machine-models/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top/model.json');
export const MOBILENET_V1 = path.join(shared, 'models/extra/mobilenet_v1_1.0_224_to_conv_pw_12/model.json');
export const PRE: Preprocessing = { size: 224, cropFraction: 0.875, trainCrop: 'random-resized-crop', scaling: MINUS_ONE_TO_ONE, channels: 3 };

/** `n` hymenoptera photos (half ants, half bees), centre-cropped to size x size, scaled to [-1, 1]. */
export async function hymenopteraBatch(n: number, size = 224): Promise<tf.Tensor4D> {
  const dir = path.join(shared, 'datasets/hymenoptera/val');
  const files = ['ants', 'bees'].flatMap((c) =>
    fs.readdirSync(path.join(dir, c)).filter((f) => f.endsWith('.jpg')).sort().slice(0, Math.ceil(n / 2)).map((f) => path.join(dir, c, f)),
  ).slice(0, n);
  const pixels = new Float32Array(n * size * size * 3);
  for (let i = 0; i < files.length; i++) {
    const raw = await sharp(files[i]).resize(size, size, { fit: 'cover' }).removeAlpha().raw().toBuffer();
    for (let j = 0; j < raw.length; j++) pixels[i * raw.length + j] = raw[j] / 127.5 - 1;
  }
  return tf.tensor4d(pixels, [n, size, size, 3]);
}

export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

/** Copies of every weight's bytes, for bit-identity checks. */
export function snapshot(weights: Map<string, tf.Tensor>): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [k, t] of weights) {
    out.set(k, new Float32Array(t.dataSync()));
    t.dispose();
  }
  return out;
}

export function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}
