/**
 * Inference speed of the backbone at 224 px on real hymenoptera photos: our folded executor
 * (forwardFrozen) against tf.layers' predict, with 1 and 2 wasm threads (one child process
 * per thread count, since threads are fixed when the backend starts). Writes
 * bench/results/inference.json with the machine's load.
 *
 * Run: node --import tsx bench/inference.ts [--images 96] [--batch 32] [--rounds 2]
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { round, runPerThreadCount } from './per-threads';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/main/engine/backend';
import { fileIOHandler, loadBackbone } from '../src/main/engine/net/index';
import { MINUS_ONE_TO_ONE } from '../src/shared/preprocessing';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const shared = path.resolve(root, '../shared');
const MODEL = path.join(shared, 'models/teachable-machine-models/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top/model.json');
const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};

/** Centre-cropped 224 px photos scaled to [-1, 1], in batches. */
async function photoBatches(count: number, batch: number): Promise<tf.Tensor4D[]> {
  const dir = path.join(shared, 'datasets/hymenoptera/val');
  const files = ['ants', 'bees'].flatMap((c) => fs.readdirSync(path.join(dir, c)).filter((f) => f.endsWith('.jpg')).map((f) => path.join(dir, c, f))).sort().slice(0, count);
  const out: tf.Tensor4D[] = [];
  for (let b = 0; b < files.length; b += batch) {
    const chunk = files.slice(b, b + batch);
    const data = new Float32Array(chunk.length * 224 * 224 * 3);
    for (let i = 0; i < chunk.length; i++) {
      const raw = await sharp(chunk[i]).resize(224, 224, { fit: 'cover' }).removeAlpha().raw().toBuffer();
      for (let j = 0; j < raw.length; j++) data[i * raw.length + j] = raw[j] / 127.5 - 1;
    }
    out.push(tf.tensor4d(data, [chunk.length, 224, 224, 3]));
  }
  return out;
}

/**
 * Images per second of wall time, and per second of this process's CPU time (all its threads:
 * with one thread it approximates the speed on an idle machine), over `rounds` passes through
 * all batches after one warm-up batch.
 */
function throughput(batches: tf.Tensor4D[], rounds: number, run: (x: tf.Tensor4D) => tf.Tensor): { wall: number; cpu: number } {
  run(batches[0]).dispose();
  let images = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let r = 0; r < rounds; r++) {
    for (const x of batches) {
      const y = run(x);
      y.dataSync();
      y.dispose();
      images += x.shape[0];
    }
  }
  const wallS = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  return { wall: images / wallS, cpu: images / ((cpu.user + cpu.system) / 1e6) };
}

async function child(): Promise<void> {
  const backend = await initBackend();
  const batches = await photoBatches(arg('images', 96), arg('batch', 32));
  const net = await loadBackbone(MODEL, { id: 'mobilenet_v2_0.35_224', preprocessing: { size: 224, cropFraction: 0.875, trainCrop: 'random-resized-crop', scaling: MINUS_ONE_TO_ONE, channels: 3 } });
  const model = await tf.loadLayersModel(fileIOHandler(MODEL));
  const rounds = arg('rounds', 2);
  const folded = throughput(batches, rounds, (x) => net.forwardFrozen(x));
  const layers = throughput(batches, rounds, (x) => model.predict(x) as tf.Tensor);
  process.stdout.write(`${JSON.stringify({ backend: backend.name, threads: backend.threads, skipped: backend.skipped.filter((s) => s.name.startsWith('wasm')), forwardFrozenImagesPerS: round(folded.wall), layersPredictImagesPerS: round(layers.wall), speedup: round(folded.wall / layers.wall, 2), forwardFrozenImagesPerCpuS: round(folded.cpu), layersPredictImagesPerCpuS: round(layers.cpu) })}\n`);
}

function main(): void {
  runPerThreadCount(fileURLToPath(import.meta.url), 'inference', { model: 'mobilenet_v2_0.35_224 (out_relu 7x7x1280)', images: arg('images', 96), batch: arg('batch', 32) });
}

if (process.argv.includes('--child')) await child();
else main();
