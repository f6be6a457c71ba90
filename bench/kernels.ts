/**
 * Training-step speed of the backbone executor: a suffix step (block_14..block_16 + Conv_1
 * trainable, BatchNorm in inference mode, linear head, Adam-free plain SGD update) on
 * cached activations of real photos, with our fused conv+BN+ReLU6 units and with tfjs
 * autodiff, at 1 and 2 wasm threads. Reports images/s, kernels per step and the kernel
 * time shares. `--full` adds a full fine-tuning step. Writes bench/results/kernels.json.
 *
 * Run: node --import tsx bench/kernels.ts [--batch 16] [--steps 6] [--full]
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { round, runPerThreadCount } from './per-threads';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/main/engine/backend';
import { loadBackbone, type KerasBackbone } from '../src/main/engine/net/index';
import { MINUS_ONE_TO_ONE } from '../src/shared/preprocessing';
import { hymenopteraBatch } from '../test/unit/engine/net-helpers';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MODEL = path.resolve(root, '../shared/models/teachable-machine-models/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top/model.json');
const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};

interface StepResult {
  imagesPerS: number;
  /** Per second of this process's CPU time (all threads); with 1 thread ~ the idle-machine speed. */
  imagesPerCpuS: number;
  msPerStep: number;
  kernelsPerStep: number;
  kernelShares: Record<string, number>;
}

async function measureStep(net: KerasBackbone, from: number, batch: number, steps: number): Promise<StepResult> {
  const images = await hymenopteraBatch(batch);
  const input = from === 0 ? images : net.forwardFrozen(images, { to: from });
  const head = tf.variable(tf.randomNormal([net.outputShape[net.outputShape.length - 1], 2], 0, 0.01, 'float32', 1));
  const labels = tf.oneHot(tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 2), 'int32'), 2);
  const vars = [...net.groups.flatMap((_, i) => net.groupVariables(i)), head];
  const step = () => {
    const { value, grads } = tf.variableGrads(() => {
      const features = net.forwardTrainable(input, { from, training: true });
      const pooled = features.rank === 4 ? tf.mean(features, [1, 2]) : features;
      return tf.losses.softmaxCrossEntropy(labels, tf.matMul(pooled as tf.Tensor2D, head)) as tf.Scalar;
    }, vars);
    tf.tidy(() => {
      for (const v of vars) v.assign(tf.sub(v, tf.mul(grads[v.name], 1e-4)));
    });
    value.dataSync();
    tf.dispose([value, ...Object.values(grads)]);
  };
  step();
  const profile = await tf.profile(step);
  const byKernel = new Map<string, number>();
  let total = 0;
  for (const k of profile.kernels) {
    if (k.name.includes('scope') || k.name.endsWith('__op')) continue; // wrappers double-count their inner kernels
    byKernel.set(k.name, (byKernel.get(k.name) ?? 0) + (k.kernelTimeMs as number));
    total += k.kernelTimeMs as number;
  }
  const kernelShares = Object.fromEntries([...byKernel].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([k, ms]) => [k, round(ms / total, 3)]));
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) step();
  const msPerStep = (performance.now() - t0) / steps;
  const cpu = process.cpuUsage(c0);
  const cpuMsPerStep = (cpu.user + cpu.system) / 1000 / steps;
  tf.dispose([images, head, labels]);
  if (input !== images) input.dispose();
  return { imagesPerS: round((batch * 1000) / msPerStep), imagesPerCpuS: round((batch * 1000) / cpuMsPerStep), msPerStep: round(msPerStep), kernelsPerStep: profile.kernels.length, kernelShares };
}

async function child(): Promise<void> {
  const backend = await initBackend();
  const net = (await loadBackbone(MODEL, { id: 'mobilenet_v2_0.35_224', preprocessing: { size: 224, cropFraction: 0.875, trainCrop: 'random-resized-crop', scaling: MINUS_ONE_TO_ONE, channels: 3 } })) as KerasBackbone;
  const batch = arg('batch', 16);
  const steps = arg('steps', 6);
  const g = net.groups.length;
  const suffix = new Set([g - 4, g - 3, g - 2, g - 1]);
  net.setTrainable(suffix);
  const result: Record<string, unknown> = { backend: backend.name, threads: backend.threads, batch };
  for (const fused of [true, false]) {
    net.setFusedUnits(fused);
    result[fused ? 'suffixFused' : 'suffixAutodiff'] = await measureStep(net, g - 4, batch, steps);
  }
  if (process.argv.includes('--full')) {
    net.setFusedUnits(true);
    net.setTrainable(new Set(net.groups.map((_, i) => i)));
    result.fullFused = await measureStep(net, 0, batch, Math.max(2, Math.floor(steps / 3)));
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

function main(): void {
  runPerThreadCount(fileURLToPath(import.meta.url), 'kernels', { step: 'suffix: block_14..block_16 + Conv_1 trainable on cached block_13 activations, linear head, SGD' });
}

if (process.argv.includes('--child')) await child();
else main();
