/**
 * The training loop: batches in, callbacks around them (beforeFit, beforeEpoch, beforeBatch,
 * afterBatch, afterEpoch, afterFit). Everything else (unfreezing, schedules, plateau, early
 * stopping, checkpoints, progress) is a callback over TrainState. Randomness is derived from
 * (seed, purpose, epoch/step), so a resumed run replays exactly what the uninterrupted run
 * would have done: the checkpoint only needs the position, not generator internals.
 */
import * as tf from '@tensorflow/tfjs';
import { AppError } from '../../shared/errors';
import type { BackboneNet } from './net/types';
import { parseConfig, type HeadConfig, type TrainConfig, type TrainConfigInput } from './config';
import { Head } from './heads';
import { GroupedOptimizer } from './optimizers';
import { resolveClassWeights } from './losses';
import { describePlan, planGroups, trainableAfter } from './param-groups';
import { runSchedule } from './schedules';
import { StepRunner } from './step-runner';
import { derivedRng, hash32 } from './rng';
import { chunks, type ImageSource } from './data';
import { TrainController } from './controller';
import { chooseMicroBatch, isOutOfMemory, outOfMemoryError } from './memory';
import { checkpointExists, dataToTensors, loadCheckpoint, saveCheckpoint, tensorsToData } from './checkpoint';
import { prepareFeeders, type CacheReport, type Feeders } from './feeders';
import {
  BestEpoch,
  CheckpointCallback,
  EarlyStopping,
  ProgressCallback,
  ReduceOnPlateau,
  ScheduleCallback,
  UnfreezeCallback,
  type Callback,
  type EpochMetrics,
  type TrainEvent,
  type TrainState,
  type WeightsSnapshot,
} from './callbacks';

export interface TrainOptions {
  net: BackboneNet;
  train: ImageSource;
  val: ImageSource;
  /** Partial or resolved config; defaults filled in. On resume, defaults to the checkpoint's config. */
  config?: TrainConfig | TrainConfigInput;
  /** Head settings over config.head. */
  head?: Partial<HeadConfig>;
  callbacks?: Callback[];
  onEvent?: (e: TrainEvent) => void;
  signal?: AbortSignal;
  controller?: TrainController;
  /** Folder for the `best` and `last` checkpoints (none saved when omitted). */
  checkpointDir?: string;
  /** A checkpoint folder (normally `<checkpointDir>/last`) to continue from. */
  resumeFrom?: string;
  /** Feature cache on disk (reused across runs with the same key); in memory / temp otherwise. */
  cacheDir?: string;
  /**
   * Identifies the data + augmentation settings behind the images, for reusing a disk cache:
   * it must change whenever the images or the augmentation settings change. The engine adds
   * the backbone id and prefix weights, cut point, views, file paths and (for augmented
   * views) config.seed, which sources are expected to seed their augmentation with.
   */
  cacheKey?: string;
}

export type TrainStatus = 'completed' | 'early-stopped' | 'stopped';

export interface TrainResult {
  status: TrainStatus;
  epochs: EpochMetrics[];
  /** 1-based epoch with the best `bestMonitor`, and its metrics. */
  bestEpoch: number | null;
  best: { val_accuracy: number; val_loss: number } | null;
  seconds: number;
  config: TrainConfig;
  microBatch: number;
  featureCache: CacheReport;
  plan: ReturnType<typeof describePlan>;
  /** The trained head (backbone weights live in `net`); the caller disposes it. */
  head: Head;
  checkpoints: { best: string | null; last: string | null };
}

interface Position {
  epoch: number;
  batch: number;
  globalStep: number;
  lrScale: number;
  epochLoss: number;
  epochCorrect: number;
  epochSeen: number;
  epochSeconds: number;
}

export interface CheckpointMeta {
  config: TrainConfig;
  position: Position;
  history: EpochMetrics[];
  callbacks: Record<string, unknown>;
  /** All randomness derives from (seed, purpose, epoch/step); nothing else to store. */
  rng: { seed: number; scheme: 'derived-v1' };
  classNames: string[];
}

function mergeHead(config: TrainConfig, head?: Partial<HeadConfig>): TrainConfig {
  return head ? parseConfig({ ...config, head: { ...config.head, ...head } }) : config;
}

/** Fine-tune `net` + a new head on `train`, validating on `val` every epoch. */
export async function train(o: TrainOptions): Promise<TrainResult> {
  const started = performance.now();
  const resumed = o.resumeFrom ? loadCheckpoint<CheckpointMeta>(o.resumeFrom) : null;
  const config = mergeHead(parseConfig(o.config ?? resumed?.meta.config ?? {}), o.head);
  const { net, train: trainSrc, val: valSrc } = o;
  if (trainSrc.numClasses !== valSrc.numClasses || trainSrc.classNames.join('\u0000') !== valSrc.classNames.join('\u0000')) {
    throw new AppError('invalid-data', `Training classes (${trainSrc.classNames.join(', ')}) differ from validation classes (${valSrc.classNames.join(', ')}). Both splits need the same class folders.`);
  }
  if (trainSrc.length === 0 || valSrc.length === 0) throw new AppError('invalid-data', `Need images in both splits; got ${trainSrc.length} training and ${valSrc.length} validation images.`);
  const controller = o.controller ?? new TrainController();
  const emit = (e: TrainEvent) => o.onEvent?.(e);
  if (resumed && resumed.meta.classNames.join('\u0000') !== trainSrc.classNames.join('\u0000')) {
    throw new AppError('invalid-data', `The checkpoint was trained on classes (${resumed.meta.classNames.join(', ')}) but the data has (${trainSrc.classNames.join(', ')}). Resume with the run's own dataset snapshot.`);
  }
  const plan = planGroups(config, net.groups.map((g) => g.name));
  const classWeights = resolveClassWeights(config.loss.classWeights, trainSrc.labels, trainSrc.numClasses, trainSrc.classNames);
  const head = new Head(config.head, net.outputShape, trainSrc.numClasses, hash32(config.seed ^ 0x4ead));
  const optimizer = new GroupedOptimizer(config.optimizer);
  const runner = new StepRunner(net, head, optimizer, plan, {
    trainBatchNormStats: config.trainBatchNormStats,
    weightDecay: config.optimizer.weightDecay,
    loss: { labelSmoothing: config.loss.labelSmoothing, classWeights },
  });
  // Weights set from outside the steps (resume, a callback's restore) invalidate memoised validation features.
  let weightsVersion = 0;
  const restore = (w: WeightsSnapshot) => {
    weightsVersion++;
    const nt = dataToTensors(w.net);
    net.setWeights(nt);
    tf.dispose([...nt.values()]);
    const ht = dataToTensors(w.head);
    head.setWeights(ht);
    tf.dispose([...ht.values()]);
  };
  const pos: Position = resumed?.meta.position ?? { epoch: 0, batch: 0, globalStep: 0, lrScale: 1, epochLoss: 0, epochCorrect: 0, epochSeen: 0, epochSeconds: 0 };
  const micro = chooseMicroBatch(net, plan.earliestTrainable, config.batchSize, config.microBatch);
  let feeders: Feeders;
  try {
    if (resumed) restore(resumed);
    // At an epoch boundary the unfreeze callback applies that epoch's stage itself.
    runner.setTrainable(trainableAfter(plan, pos.batch > 0 ? pos.epoch : pos.epoch - 1));
    if (resumed?.optimizer) optimizer.setState(resumed.optimizer);
    feeders = await prepareFeeders({ net, config, plan, train: trainSrc, val: valSrc, cacheDir: o.cacheDir, cacheKey: o.cacheKey, signal: o.signal, emit });
  } catch (err) {
    head.dispose();
    optimizer.dispose();
    throw err;
  }
  const batchesPerEpoch = Math.ceil(trainSrc.length / config.batchSize);
  let stopped = false;

  const state: TrainState = {
    config,
    runner,
    plan,
    epochs: config.epochs,
    ...pos,
    batchesPerEpoch,
    lrs: runner.peakLrs(),
    lastBatch: null,
    history: resumed?.meta.history ?? [],
    stopReason: null,
    stop(reason) {
      this.stopReason ??= reason;
    },
    emit,
    snapshotWeights: () => ({ net: tensorsToData(net.getWeights()), head: tensorsToData(head.getWeights()) }),
    restoreWeights: restore,
    lrsByGroup: () => Object.fromEntries(optimizer.groupNames.map((n, i) => [n, state.lrs[i]])),
  };

  const best = new BestEpoch(config.bestMonitor);
  const early = config.earlyStopping.enabled ? new EarlyStopping(config.earlyStopping) : null;
  const dirs = { best: o.checkpointDir ? `${o.checkpointDir}/best` : null, last: o.checkpointDir ? `${o.checkpointDir}/last` : null };
  const callbacks: Callback[] = [
    new UnfreezeCallback(),
    new ScheduleCallback(runSchedule(config, batchesPerEpoch)),
    ...(config.plateau.enabled ? [new ReduceOnPlateau(config.plateau)] : []),
    best,
    ...(early ? [early] : []),
  ];
  const save = (kind: 'best' | 'last', afterEpoch: boolean): string | null => {
    const dir = dirs[kind];
    if (!dir) return null;
    const position: Position = afterEpoch
      ? { epoch: state.epoch + 1, batch: 0, globalStep: state.globalStep, lrScale: state.lrScale, epochLoss: 0, epochCorrect: 0, epochSeen: 0, epochSeconds: 0 }
      : { epoch: state.epoch, batch: state.batch, globalStep: state.globalStep, lrScale: state.lrScale, epochLoss: state.epochLoss, epochCorrect: state.epochCorrect, epochSeen: state.epochSeen, epochSeconds: state.epochSeconds };
    const cbState = Object.fromEntries(callbacks.filter((c) => c.getState).map((c) => [c.name, c.getState!()]));
    const w = state.snapshotWeights();
    const meta: CheckpointMeta = { config, position, history: state.history, callbacks: cbState, rng: { seed: config.seed, scheme: 'derived-v1' }, classNames: trainSrc.classNames };
    saveCheckpoint(dir, { net: w.net, head: w.head, optimizer: optimizer.getState(), meta });
    return dir;
  };
  callbacks.push(new CheckpointCallback(best, save), new ProgressCallback(), ...(o.callbacks ?? []));
  for (const c of callbacks) {
    const st = resumed?.meta.callbacks[c.name];
    if (st !== undefined) c.setState?.(st);
  }
  if (early && resumed && dirs.best && checkpointExists(dirs.best) && config.earlyStopping.monitor === config.bestMonitor) {
    const b = loadCheckpoint(dirs.best);
    early.setBestWeights({ net: b.net, head: b.head });
  }
  const run = async (hook: Exclude<keyof Callback, 'name' | 'getState' | 'setState'>) => {
    for (const c of callbacks) await c[hook]?.(state);
  };
  const stopRequested = () => controller.stopped || !!o.signal?.aborted;

  try {
    await run('beforeFit');
    emit({ type: 'setup', microBatch: micro, featureCache: { enabled: feeders.cache.enabled, group: feeders.cache.group, views: feeders.cache.views, where: feeders.cache.where } });
    emit({ type: 'status', phase: 'training', message: `Training ${config.epochs} epochs, batch ${config.batchSize} (micro-batch ${micro}), ${feeders.cache.enabled ? `features cached at ${feeders.cache.group}` : 'no feature cache'}` });
    while (state.epoch < config.epochs && !state.stopReason) {
      if (state.batch === 0) await run('beforeEpoch');
      const order = derivedRng(config.seed, 'shuffle', state.epoch).shuffle(Array.from({ length: trainSrc.length }, (_, i) => i));
      const batches = chunks(order, config.batchSize);
      const load = (k: number) => feeders.train.load(batches[k], state.epoch);
      let next: Promise<tf.Tensor> | null = state.batch < batches.length ? load(state.batch) : null;
      let mark = performance.now();
      try {
        while (state.batch < batches.length) {
          await controller.gate(o.signal);
          if (stopRequested()) {
            stopped = true;
            break;
          }
          await run('beforeBatch');
          const idx = batches[state.batch];
          const x = await next!;
          next = state.batch + 1 < batches.length ? load(state.batch + 1) : null;
          try {
            const labels = Int32Array.from(idx, (i) => trainSrc.labels[i]);
            state.lastBatch = runner.trainStep(x, feeders.train.from, labels, state.lrs, hash32(config.seed ^ hash32(state.globalStep + 1)), micro, state.globalStep);
          } catch (err) {
            if (isOutOfMemory(err)) throw outOfMemoryError(err, { backend: tf.getBackend(), batchSize: config.batchSize, microBatch: micro, trainableGroups: runner.trainable.size, netId: net.id });
            throw err;
          } finally {
            x.dispose();
          }
          const now = performance.now();
          state.epochSeconds += (now - mark) / 1000;
          mark = now;
          state.epochLoss += state.lastBatch.loss * state.lastBatch.size;
          state.epochCorrect += state.lastBatch.correct;
          state.epochSeen += state.lastBatch.size;
          state.batch++;
          state.globalStep++;
          await run('afterBatch');
        }
      } finally {
        if (next) (await next.catch(() => null))?.dispose();
      }
      if (stopped) {
        state.stop('stopped');
        const dir = save('last', false);
        if (dir) emit({ type: 'checkpoint', kind: 'last', epoch: state.epoch + 1, dir });
        break;
      }
      emit({ type: 'status', phase: 'evaluating', message: `Evaluating epoch ${state.epoch + 1}` });
      const evalStart = performance.now();
      const ev = await runner.evaluate(feeders.valAt(runner.boundary, weightsVersion), valSrc.labels, Math.max(32, config.batchSize), config.tta);
      state.history.push({
        epoch: state.epoch + 1,
        train_loss: state.epochLoss / Math.max(1, state.epochSeen),
        train_accuracy: state.epochCorrect / Math.max(1, state.epochSeen),
        val_loss: ev.loss,
        val_accuracy: ev.accuracy,
        lr: state.lrs[state.lrs.length - 1],
        lrs: state.lrsByGroup(),
        seconds: state.epochSeconds + (performance.now() - evalStart) / 1000,
        trainable: [...runner.trainable].sort((a, b) => a - b).map((g) => plan.names[g]),
      });
      await run('afterEpoch');
      Object.assign(state, { epoch: state.epoch + 1, batch: 0, epochLoss: 0, epochCorrect: 0, epochSeen: 0, epochSeconds: 0 });
    }
    await run('afterFit');
  } catch (err) {
    feeders.dispose();
    head.dispose();
    optimizer.dispose();
    throw err;
  }
  feeders.dispose();
  optimizer.dispose();
  const b = best.best;
  return {
    status: state.stopReason === 'early-stopping' ? 'early-stopped' : stopped ? 'stopped' : 'completed',
    epochs: state.history,
    bestEpoch: b?.epoch ?? null,
    best: b ? { val_accuracy: b.val_accuracy, val_loss: b.val_loss } : null,
    seconds: (performance.now() - started) / 1000,
    config,
    microBatch: micro,
    featureCache: feeders.cache,
    plan: describePlan(plan),
    head,
    checkpoints: { best: dirs.best && checkpointExists(dirs.best) ? dirs.best : null, last: dirs.last && checkpointExists(dirs.last) ? dirs.last : null },
  };
}
