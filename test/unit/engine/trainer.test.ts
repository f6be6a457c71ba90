import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../src/main/engine/backend';
import { train, type TrainOptions } from '../../../src/main/engine/trainer';
import { TrainController } from '../../../src/main/engine/controller';
import { loadCheckpoint } from '../../../src/main/engine/checkpoint';
import type { Callback, TrainEvent } from '../../../src/main/engine/callbacks';
import type { TrainConfigInput } from '../../../src/main/engine/config';
import { AppError } from '../../../src/shared/errors';
import { FakeNet, FakeSource } from './fake-net';

before(async () => {
  await initBackend();
});

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'engine-trainer-'));

const BASE: TrainConfigInput = {
  epochs: 4,
  batchSize: 8,
  seed: 3,
  augment: false,
  optimizer: { name: 'adamw', lr: 0.02, weightDecay: 0.01 },
  schedule: { name: 'cosine', scope: 'run' },
  trainable: { mode: 'last', last: 2 },
  head: { kind: 'concat-pool', hidden: 8, dropout: 0.1, dropoutFinal: 0.2 },
};

async function fit(config: TrainConfigInput, extra: Partial<TrainOptions> = {}) {
  const net = extra.net ?? new FakeNet(8, 5);
  const events: TrainEvent[] = [];
  const r = await train({ net, train: new FakeSource(40), val: new FakeSource(16, 8, 2, 99), config, onEvent: (e) => events.push(e), ...extra });
  const weights = toArrays(net.getWeights());
  const head = toArrays(r.head.getWeights());
  return { r, events, weights, head, net };
}

function toArrays(m: Map<string, tf.Tensor>): Map<string, number[]> {
  const out = new Map([...m].map(([k, t]) => [k, Array.from(t.dataSync())]));
  tf.dispose([...m.values()]);
  return out;
}

function cleanup(...xs: { r: { head: { dispose(): void } }; net: { dispose(): void } }[]) {
  for (const x of xs) {
    x.r.head.dispose();
    x.net.dispose();
  }
}

test('events come in order and metrics are reported per epoch', async () => {
  const seen: string[] = [];
  const probe: Callback = {
    name: 'probe',
    beforeFit: () => void seen.push('beforeFit'),
    beforeEpoch: (s) => void seen.push(`beforeEpoch${s.epoch}`),
    afterEpoch: (s) => void seen.push(`afterEpoch${s.epoch}`),
    afterFit: () => void seen.push('afterFit'),
  };
  const a = await fit({ ...BASE, epochs: 2 }, { callbacks: [probe] });
  assert.deepEqual(seen, ['beforeFit', 'beforeEpoch0', 'afterEpoch0', 'beforeEpoch1', 'afterEpoch1', 'afterFit']);
  assert.equal(a.r.status, 'completed');
  assert.equal(a.r.epochs.length, 2);
  const e = a.r.epochs[1];
  for (const k of ['train_loss', 'train_accuracy', 'val_loss', 'val_accuracy', 'lr', 'seconds'] as const) assert.ok(Number.isFinite(e[k]), k);
  const batches = a.events.filter((x) => x.type === 'batch');
  assert.equal(batches.length, 2 * 5);
  const b = batches[3] as Extract<TrainEvent, { type: 'batch' }>;
  assert.deepEqual([b.epoch, b.batch, b.batches], [1, 4, 5]);
  assert.deepEqual(Object.keys(b.lrs), ['block_2', 'top', 'head']);
  assert.ok(b.imagesPerSec > 0 && b.etaSeconds >= 0);
  assert.ok(a.r.epochs[1].train_accuracy > 0.8, 'learns the synthetic task');
  cleanup(a);
});

test('same seed, same backend: same metrics and weights; another seed differs', async () => {
  const a = await fit(BASE);
  const b = await fit(BASE);
  const c = await fit({ ...BASE, seed: 4 });
  assert.deepEqual(a.r.epochs.map((e) => [e.train_loss, e.val_loss]), b.r.epochs.map((e) => [e.train_loss, e.val_loss]));
  assert.deepEqual(a.weights, b.weights);
  assert.notDeepEqual(a.r.epochs.map((e) => e.train_loss), c.r.epochs.map((e) => e.train_loss));
  cleanup(a, b, c);
});

test('tf.memory().numTensors is flat across epochs', async () => {
  const counts: number[] = [];
  const probe: Callback = { name: 'mem', afterEpoch: () => void counts.push(tf.memory().numTensors) };
  const before = tf.memory().numTensors;
  const a = await fit({ ...BASE, epochs: 4, microBatch: 3 }, { callbacks: [probe] });
  assert.equal(new Set(counts).size, 1, `tensor counts per epoch: ${counts}`);
  cleanup(a);
  assert.equal(tf.memory().numTensors, before, 'everything is released once net and head are disposed');
});

test('progressive unfreezing happens at the planned epoch, with its lr', async () => {
  const a = await fit({
    ...BASE,
    trainable: { mode: 'head' },
    optimizer: { name: 'adam', lr: 0.01 },
    unfreeze: { stages: [{ afterEpoch: 2, groups: 2, lrMult: 0.1 }], resetOptimizer: true },
    featureCache: { enabled: false },
  });
  assert.deepEqual(a.r.epochs.map((e) => e.trainable), [[], [], ['block_2', 'top'], ['block_2', 'top']]);
  const u = a.events.filter((e) => e.type === 'unfreeze');
  assert.equal(u.length, 1);
  assert.deepEqual(u[0], { type: 'unfreeze', epoch: 3, groups: ['block_2', 'top'], lrs: { block_2: 0.001, top: 0.001, head: 0.01 } });
  assert.ok(Math.abs(a.r.epochs[2].lrs.top / a.r.epochs[2].lrs.head - 0.1) < 1e-9);
  cleanup(a);
});

test('early stopping stops after patience and restores the best weights', async () => {
  const dir = tmp();
  // lr x 1e4 from epoch 2 on: the loss blows up, val_loss stops improving.
  const cfg: TrainConfigInput = { ...BASE, epochs: 8, optimizer: { name: 'sgd', lr: 0.05, momentum: 0 }, schedule: { name: 'multi-step', milestones: [2], gamma: 1e4, scope: 'run' }, earlyStopping: { enabled: true, monitor: 'val_loss', patience: 2, restoreBest: true }, bestMonitor: 'val_loss' };
  const a = await fit(cfg, { checkpointDir: dir });
  assert.equal(a.r.status, 'early-stopped');
  assert.ok(a.r.epochs.length < 8);
  assert.equal(a.events.filter((e) => e.type === 'early-stop').length, 1);
  const bestEpoch = a.r.bestEpoch!;
  assert.equal(a.r.epochs.length, bestEpoch + 2, 'stopped `patience` epochs after the best');
  const best = loadCheckpoint(path.join(dir, 'best'));
  for (const [k, v] of best.net) assert.deepEqual(a.weights.get(k), Array.from(v.values), `${k} restored to the best epoch`);
  for (const [k, v] of best.head) assert.deepEqual(a.head.get(k), Array.from(v.values), `head ${k} restored`);
  cleanup(a);
});

test('stop mid-epoch, then resume from the last checkpoint: same result as an uninterrupted run', async () => {
  const cfg: TrainConfigInput = { ...BASE, epochs: 3, unfreeze: { stages: [{ afterEpoch: 1, groups: 1, lrMult: 0.5 }] }, plateau: { enabled: true, patience: 0 } };
  const full = await fit(cfg);
  const dir = tmp();
  const controller = new TrainController();
  const stopper: Callback = { name: 'stopper', afterBatch: (s) => void (s.epoch === 1 && s.batch === 2 && controller.stop()) };
  const first = await fit(cfg, { checkpointDir: dir, controller, callbacks: [stopper] });
  assert.equal(first.r.status, 'stopped');
  assert.equal(first.r.epochs.length, 1);
  const second = await fit(cfg, { checkpointDir: dir, resumeFrom: path.join(dir, 'last') });
  assert.equal(second.r.status, 'completed');
  assert.deepEqual(second.r.epochs.map((e) => e.epoch), [1, 2, 3]);
  const close = (a: number[], b: number[]) => a.forEach((v, i) => assert.ok(Math.abs(v - b[i]) < 1e-5, `${v} vs ${b[i]}`));
  close(second.r.epochs.map((e) => e.val_loss), full.r.epochs.map((e) => e.val_loss));
  close(second.r.epochs.map((e) => e.train_loss), full.r.epochs.map((e) => e.train_loss));
  for (const [k, v] of full.weights) close(second.weights.get(k)!, v);
  // A crash right after epoch 2: what is on disk then is the end-of-epoch checkpoint.
  const crashDir = tmp();
  const copier: Callback = { name: 'copier', afterEpoch: (s) => void (s.epoch === 1 && fs.cpSync(path.join(dir, 'last'), path.join(crashDir, 'last'), { recursive: true })) };
  const third = await fit(cfg, { checkpointDir: dir, callbacks: [copier] });
  const fourth = await fit(cfg, { resumeFrom: path.join(crashDir, 'last') });
  assert.equal(fourth.r.epochs.length, 3);
  close(fourth.r.epochs.map((e) => e.val_loss), full.r.epochs.map((e) => e.val_loss));
  for (const [k, v] of full.weights) close(fourth.weights.get(k)!, v);
  cleanup(full, first, second, third, fourth);
});

test('pause holds the loop at a batch boundary until resume', async () => {
  const controller = new TrainController();
  let pausedAt = -1;
  let batchesWhilePaused = 0;
  const probe: Callback = {
    name: 'pauser',
    afterBatch: (s) => {
      if (controller.paused) batchesWhilePaused++;
      if (s.globalStep === 3) {
        controller.pause();
        pausedAt = s.globalStep;
        setTimeout(() => controller.resume(), 50);
      }
    },
  };
  const a = await fit({ ...BASE, epochs: 1 }, { controller, callbacks: [probe] });
  assert.equal(pausedAt, 3);
  assert.equal(batchesWhilePaused, 0);
  assert.equal(a.r.status, 'completed');
  cleanup(a);
});

test('micro-batches with gradient accumulation match the full batch', async () => {
  const cfg: TrainConfigInput = { ...BASE, epochs: 1, head: { kind: 'linear' }, optimizer: { name: 'sgd', lr: 0.05, momentum: 0.9 } };
  const a = await fit({ ...cfg, microBatch: 0 });
  const b = await fit({ ...cfg, microBatch: 3 });
  assert.equal(a.r.microBatch, 8);
  assert.equal(b.r.microBatch, 3);
  for (const [k, v] of a.weights) b.weights.get(k)!.forEach((x, i) => assert.ok(Math.abs(x - v[i]) < 1e-5, k));
  cleanup(a, b);
});

test('an out-of-memory error becomes an AppError that says what to change', async () => {
  const net = new FakeNet(8, 5);
  net.forwardTrainable = () => {
    throw new Error('RuntimeError: memory access out of bounds');
  };
  await assert.rejects(
    () => train({ net, train: new FakeSource(16), val: new FakeSource(8), config: { ...BASE, epochs: 1, batchSize: 8, microBatch: 8 } }),
    (e: unknown) => e instanceof AppError && e.code === 'out-of-memory' && /Set "microBatch" to 4/.test(e.message) && /batch 8/.test(e.message),
  );
  net.dispose();
});

test('config errors name the field and the accepted values', async () => {
  const net = new FakeNet();
  await assert.rejects(
    () => train({ net, train: new FakeSource(8), val: new FakeSource(8), config: { optimizer: { name: 'adamax' as never } } }),
    (e: unknown) => e instanceof AppError && /optimizer\.name: Unknown optimizer "adamax"\. Expected one of: sgd, adam, adamw/.test(e.message),
  );
  net.dispose();
});
