/** The training and LR-finder jobs, run inside the engine worker. */
import fs from 'node:fs';
import path from 'node:path';
import type { BackendReport } from '../../../shared/contract';
import { loadBackbone } from '../../engine/net';
import { train } from '../../engine/trainer';
import { lrFind } from '../../engine/lr-finder';
import type { TrainEvent } from '../../engine/callbacks';
import type { JobIO } from './protocol';
import type { LrFindJobPayload, TrainJobPayload, TrainJobResult } from './train-job-types';
import { DEFAULT_AUGMENT, openSplit } from './data-access';
import { DECODER_VERSION } from '../../dataset/cache';
import { trace } from '../trace';
import { startPixelThread } from './pixel-thread';
import type { PixelThread } from '../../dataset/image-source';

function dirSize(dir: string): number {
  let total = 0;
  if (!fs.existsSync(dir)) return 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    total += e.isDirectory() ? dirSize(p) : fs.statSync(p).size;
  }
  return total;
}

/** Train with batches made on a pixel helper thread (started first: it loads while the backbone does). */
export async function trainJob(p: TrainJobPayload, io: JobIO, backend: BackendReport): Promise<TrainJobResult> {
  const pixels = startPixelThread();
  try {
    return await trainWith(p, io, backend, pixels);
  } finally {
    await pixels.dispose();
  }
}

async function trainWith(p: TrainJobPayload, io: JobIO, backend: BackendReport, pixels: PixelThread): Promise<TrainJobResult> {
  const net = await loadBackbone(p.backbone.modelJson, { id: p.backbone.id, preprocessing: p.backbone.preprocessing });
  trace('backbone loaded');
  const trainSrc = await openSplit(p.data, 'train', p.backbone.preprocessing, { augment: p.config.augment ? DEFAULT_AUGMENT : undefined, seed: p.config.seed, thread: pixels });
  const valSrc = await openSplit(p.data, 'val', p.backbone.preprocessing, { seed: p.config.seed, thread: pixels });
  let lastStatus = '';
  const checkpointDir = path.join(p.runDir, 'checkpoints');
  let batches = 0;
  const onEvent = (e: TrainEvent) => {
    switch (e.type) {
      case 'batch':
        batches = e.batches;
        io.emit('progress', {
          epoch: e.epoch,
          epochs: e.epochs,
          batch: e.batch,
          batches: e.batches,
          step: (e.epoch - 1) * e.batches + e.batch,
          loss: e.loss,
          accuracy: e.acc,
          lrs: e.lrs,
          imagesPerSec: e.imagesPerSec,
          etaSeconds: e.etaSeconds,
        });
        break;
      case 'epoch': {
        const m = e.metrics;
        trace(`epoch ${m.epoch} done`);
        io.emit('epoch', {
          epoch: m.epoch,
          step: m.epoch * Math.max(1, batches),
          train_loss: m.train_loss,
          train_accuracy: m.train_accuracy,
          val_loss: m.val_loss,
          val_accuracy: m.val_accuracy,
          lr: m.lr,
          seconds: m.seconds,
          extra: { trainable_groups: m.trainable.length },
        });
        break;
      }
      case 'unfreeze':
        io.emit('unfrozen', { epoch: e.epoch, groups: e.groups });
        break;
      case 'checkpoint':
        io.emit('checkpoint', { path: e.dir, epoch: e.epoch, kind: e.kind, size: dirSize(e.dir) });
        break;
      case 'setup':
        io.emit('setup', { microBatch: e.microBatch, featureCache: e.featureCache });
        break;
      case 'status':
        if (e.message !== lastStatus) trace((lastStatus = e.message));
        io.emit('phase', { phase: e.message, done: e.done ?? 0, total: e.total ?? 0 });
        break;
      default:
        break;
    }
  };
  try {
    const resumeFrom = p.resume ? path.join(checkpointDir, 'last') : undefined;
    const r = await train({
      net,
      train: trainSrc,
      val: valSrc,
      config: p.config,
      onEvent,
      controller: io.controller,
      checkpointDir,
      resumeFrom: resumeFrom && fs.existsSync(resumeFrom) ? resumeFrom : undefined,
      cacheDir: p.featureCacheDir,
      // Features depend on the decoded pixels too: a new decoder must not reuse old features.
      cacheKey: `${p.data.snapshotId}:${p.backbone.id}:decoder-v${DECODER_VERSION}`,
    });
    r.head.dispose();
    return {
      status: r.status === 'stopped' ? 'stopped' : 'finished',
      engineStatus: r.status,
      best: r.best && r.bestEpoch ? { epoch: r.bestEpoch, ...r.best } : null,
      epochs: r.epochs.map(({ lrs: _lrs, trainable: _trainable, ...summary }) => summary),
      backend: backend.name,
      threads: backend.threads,
      seconds: r.seconds,
      microBatch: r.microBatch,
      featureCache: r.featureCache,
    };
  } finally {
    net.dispose();
  }
}

export async function lrFindJob(p: LrFindJobPayload, io: JobIO) {
  const net = await loadBackbone(p.backbone.modelJson, { id: p.backbone.id, preprocessing: p.backbone.preprocessing });
  try {
    const trainSrc = await openSplit(p.data, 'train', p.backbone.preprocessing, { augment: p.config.augment ? DEFAULT_AUGMENT : undefined, seed: p.config.seed });
    const r = await lrFind({
      net,
      train: trainSrc,
      config: p.config,
      steps: p.steps,
      signal: io.signal,
      onProgress: (x) => io.emit('phase', { phase: 'lr-find', done: x.step, total: x.steps }),
    });
    return {
      points: r.lrs.map((lr, i) => ({ lr, loss: r.smoothed[i] ?? r.losses[i] })),
      suggestions: { steepest: Number.isFinite(r.suggestions.steepest) ? r.suggestions.steepest : null, valley: Number.isFinite(r.suggestions.valley) ? r.suggestions.valley : null },
      groups: r.groups,
    };
  } finally {
    net.dispose();
  }
}
