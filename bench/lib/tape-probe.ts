/**
 * What one micro-batch of full fine-tuning really holds, next to the engine's estimate
 * (src/main/engine/memory.ts): one training step of `micro` random images through every
 * group on the wasm backend, under tf.profile (peak bytes of live tensors) plus the wasm
 * heap size afterwards (it grows to the peak and never shrinks).
 *
 *   node --import tsx bench/lib/tape-probe.ts MODEL_JSON MICRO   -> one JSON line on stdout
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/main/engine/backend';
import { Head } from '../../src/main/engine/heads';
import { tapeBytesPerImage } from '../../src/main/engine/memory';
import { loadBackbone } from '../../src/main/engine/net/index';
import { GroupedOptimizer } from '../../src/main/engine/optimizers';
import { planGroups } from '../../src/main/engine/param-groups';
import { StepRunner } from '../../src/main/engine/step-runner';
import { resolveConfig } from '../../src/main/engine/strategies';
import { MINUS_ONE_TO_ONE } from '../../src/shared/preprocessing';

const MB = 2 ** 20;
const [modelJson, microArg] = process.argv.slice(2);
const micro = Number(microArg);
if (!modelJson || !(micro > 0)) throw new Error('usage: tape-probe.ts MODEL_JSON MICRO');

const backend = await initBackend({ prefer: 'wasm' });
const net = await loadBackbone(modelJson, { id: 'probe', preprocessing: { size: 224, cropFraction: 0.875, trainCrop: 'random-resized-crop', scaling: MINUS_ONE_TO_ONE, channels: 3 } });
const config = resolveConfig('full', { batchSize: micro, augment: false });
const plan = planGroups(config, net.groups.map((g) => g.name));
const runner = new StepRunner(net, new Head(config.head, net.outputShape, 2, 1), new GroupedOptimizer(config.optimizer), plan, {
  trainBatchNormStats: config.trainBatchNormStats,
  weightDecay: config.optimizer.weightDecay,
  loss: { labelSmoothing: 0, classWeights: null },
});
runner.setTrainable(net.groups.map((_, i) => i));
const x = tf.randomUniform([micro, 224, 224, 3], -1, 1);
const labels = Int32Array.from({ length: micro }, (_, i) => i % 2);
/** The wasm Memory's size (threaded build: Module.wasmMemory; plain: asm.memory); HEAPU8 can be a stale view. */
const heapMB = () => {
  const w = (tf.backend() as unknown as { wasm?: { wasmMemory?: WebAssembly.Memory; asm?: { memory?: WebAssembly.Memory } } }).wasm;
  return ((w?.wasmMemory ?? w?.asm?.memory)?.buffer.byteLength ?? 0) / MB;
};
// The first step also creates the optimiser's slots; the second shows the steady state.
const steps = [];
for (let k = 0; k < 2; k++) {
  const before = tf.memory().numBytes;
  const info = await tf.profile(() => {
    runner.trainStep(x, 0, labels, runner.peakLrs(), 1, micro, k);
  });
  steps.push({ peakMB: info.peakBytes / MB, perImageMB: (info.peakBytes - before) / micro / MB });
}
console.log(
  JSON.stringify({
    backend: backend.name,
    threads: backend.threads,
    micro,
    estimateMBPerImage: tapeBytesPerImage(net, plan.earliestTrainable) / MB,
    measuredMBPerImage: steps[1].perImageMB,
    peakTensorMB: steps[1].peakMB,
    wasmHeapMB: heapMB(),
  }),
);
