/**
 * The training loop is events plus callbacks (fastai learner.py, Keras callbacks): the loop
 * only moves batches; unfreezing, schedules, reduce-on-plateau, early stopping, best-epoch
 * tracking, checkpoints and progress reporting are callbacks over one shared TrainState.
 * Callbacks that must survive a resume expose getState/setState (stored in checkpoints).
 */
import type { TrainConfig } from './config';
import { monitorMode, type Monitor } from './config';
import type { GroupPlan } from './param-groups';
import { trainableAfter } from './param-groups';
import type { StepRunner, StepResult } from './step-runner';
import type { TensorData } from './optimizers';
import type { EpochSummary } from '../../shared/contract/training';

export interface EpochMetrics extends EpochSummary {
  /** Lr of every optimiser group at the end of the epoch. */
  lrs: Record<string, number>;
  /** Backbone groups trained during the epoch. */
  trainable: string[];
}

export interface BatchProgress {
  /** 1-based epoch and batch. */
  epoch: number;
  epochs: number;
  batch: number;
  batches: number;
  /** Running means over the epoch so far. */
  loss: number;
  acc: number;
  lrs: Record<string, number>;
  imagesPerSec: number;
  etaSeconds: number;
}

export type TrainEvent =
  | { type: 'status'; phase: 'caching' | 'training' | 'evaluating'; message: string; done?: number; total?: number }
  /** How this session of the run executes (recorded in the run's log): micro-batch and feature cache. */
  | { type: 'setup'; microBatch: number; featureCache: { enabled: boolean; group: string | null; views: number; where: 'memory' | 'disk' | null } }
  | ({ type: 'batch' } & BatchProgress)
  | { type: 'epoch'; metrics: EpochMetrics }
  | { type: 'unfreeze'; epoch: number; groups: string[]; lrs: Record<string, number> }
  | { type: 'lr-reduced'; epoch: number; scale: number }
  | { type: 'early-stop'; epoch: number; bestEpoch: number }
  | { type: 'checkpoint'; kind: 'best' | 'last'; epoch: number; dir: string };

/** Weights of backbone and head, as plain data. */
export interface WeightsSnapshot {
  net: Map<string, TensorData>;
  head: Map<string, TensorData>;
}

/** Everything a callback may read or change. Epoch/batch counters are 0-based here. */
export interface TrainState {
  readonly config: TrainConfig;
  readonly runner: StepRunner;
  readonly plan: GroupPlan;
  readonly epochs: number;
  /** Epochs completed (also the 0-based index of the current epoch). */
  epoch: number;
  /** Batches completed in the current epoch. */
  batch: number;
  batchesPerEpoch: number;
  globalStep: number;
  /** Extra lr factor (reduce-on-plateau); multiplies the scheduled lrs. */
  lrScale: number;
  /** Current lr per optimiser group. */
  lrs: number[];
  lastBatch: StepResult | null;
  /** Running sums of the current epoch. */
  epochLoss: number;
  epochCorrect: number;
  epochSeen: number;
  /** Seconds spent in the current epoch (training so far; carried over a resume). */
  epochSeconds: number;
  history: EpochMetrics[];
  stopReason: string | null;
  stop(reason: string): void;
  emit(e: TrainEvent): void;
  snapshotWeights(): WeightsSnapshot;
  restoreWeights(s: WeightsSnapshot): void;
  /** Lr of each optimiser group by name. */
  lrsByGroup(): Record<string, number>;
}

export interface Callback {
  readonly name: string;
  beforeFit?(s: TrainState): void | Promise<void>;
  beforeEpoch?(s: TrainState): void | Promise<void>;
  beforeBatch?(s: TrainState): void | Promise<void>;
  afterBatch?(s: TrainState): void | Promise<void>;
  afterEpoch?(s: TrainState): void | Promise<void>;
  afterFit?(s: TrainState): void | Promise<void>;
  getState?(): unknown;
  setState?(state: unknown): void;
}

function metricOf(m: EpochMetrics, monitor: Monitor): number {
  return m[monitor];
}

/** Progressive unfreezing: before each epoch, make the plan's groups for that epoch trainable. */
export class UnfreezeCallback implements Callback {
  readonly name = 'unfreeze';
  beforeEpoch(s: TrainState): void {
    const want = trainableAfter(s.plan, s.epoch);
    const have = s.runner.trainable;
    if (want.size === have.size && [...want].every((g) => have.has(g))) return;
    const added = [...want].filter((g) => !have.has(g)).sort((a, b) => a - b);
    s.runner.setTrainable(want);
    if (s.config.unfreeze.resetOptimizer) s.runner.optimizer.reset();
    s.emit({ type: 'unfreeze', epoch: s.epoch + 1, groups: added.map((g) => s.plan.names[g]), lrs: Object.fromEntries(s.runner.optimizer.groupNames.map((n, i) => [n, s.runner.peakLrs()[i]])) });
  }
}

/** Keras ReduceLROnPlateau over the epoch metrics: scales every group's lr by `factor`. */
export class ReduceOnPlateau implements Callback {
  readonly name = 'reduce-on-plateau';
  private best: number | null = null;
  private wait = 0;
  private cooldown = 0;
  constructor(private readonly c: TrainConfig['plateau']) {}
  afterEpoch(s: TrainState): void {
    const m = s.history[s.history.length - 1];
    const v = metricOf(m, this.c.monitor);
    const better = monitorMode(this.c.monitor) === 'min' ? (a: number, b: number) => a < b - this.c.minDelta : (a: number, b: number) => a > b + this.c.minDelta;
    if (this.cooldown > 0) this.cooldown--;
    if (this.best === null || better(v, this.best)) {
      this.best = v;
      this.wait = 0;
      return;
    }
    if (this.cooldown > 0) return;
    this.wait++;
    if (this.wait > this.c.patience) {
      const next = Math.max(this.c.minMult, s.lrScale * this.c.factor);
      if (next < s.lrScale) {
        s.lrScale = next;
        s.emit({ type: 'lr-reduced', epoch: m.epoch, scale: next });
      }
      this.wait = 0;
      this.cooldown = this.c.cooldown;
    }
  }
  getState() {
    return { best: this.best, wait: this.wait, cooldown: this.cooldown };
  }
  setState(st: unknown): void {
    Object.assign(this, st as object);
  }
}

/**
 * Keras EarlyStopping: stop when `monitor` hasn't improved by min_delta for `patience`
 * epochs; optionally put back the weights of the best epoch when training ends.
 */
export class EarlyStopping implements Callback {
  readonly name = 'early-stopping';
  best: number | null = null;
  bestEpoch = 0;
  private wait = 0;
  private bestWeights: WeightsSnapshot | null = null;
  stoppedEpoch = 0;
  constructor(private readonly c: TrainConfig['earlyStopping']) {}
  private improved(v: number): boolean {
    if (this.best === null) return true;
    return monitorMode(this.c.monitor, this.c.mode) === 'min' ? v < this.best - this.c.minDelta : v > this.best + this.c.minDelta;
  }
  afterEpoch(s: TrainState): void {
    const m = s.history[s.history.length - 1];
    const v = metricOf(m, this.c.monitor);
    if (this.improved(v)) {
      this.best = v;
      this.bestEpoch = m.epoch;
      this.wait = 0;
      if (this.c.restoreBest) this.bestWeights = s.snapshotWeights();
      return;
    }
    this.wait++;
    if (this.wait >= this.c.patience) {
      this.stoppedEpoch = m.epoch;
      s.stop('early-stopping');
      s.emit({ type: 'early-stop', epoch: m.epoch, bestEpoch: this.bestEpoch });
    }
  }
  afterFit(s: TrainState): void {
    if (this.c.restoreBest && this.bestWeights && s.stopReason === 'early-stopping') s.restoreWeights(this.bestWeights);
  }
  /** Weights kept for restoreBest (set back on resume from the best checkpoint). */
  setBestWeights(w: WeightsSnapshot | null): void {
    this.bestWeights = w;
  }
  getState() {
    return { best: this.best, bestEpoch: this.bestEpoch, wait: this.wait };
  }
  setState(st: unknown): void {
    Object.assign(this, st as object);
  }
}

/** Tracks the best epoch by `bestMonitor` (ties: lower val_loss); the run summary reads it. */
export class BestEpoch implements Callback {
  readonly name = 'best-epoch';
  best: EpochMetrics | null = null;
  improvedThisEpoch = false;
  constructor(private readonly monitor: Monitor) {}
  afterEpoch(s: TrainState): void {
    const m = s.history[s.history.length - 1];
    const b = this.best;
    const dir = monitorMode(this.monitor) === 'min' ? -1 : 1;
    const d = b ? (metricOf(m, this.monitor) - metricOf(b, this.monitor)) * dir : 1;
    this.improvedThisEpoch = !b || d > 0 || (d === 0 && m.val_loss < b.val_loss);
    if (this.improvedThisEpoch) this.best = m;
  }
  getState() {
    return { best: this.best };
  }
  setState(st: unknown): void {
    this.best = (st as { best: EpochMetrics | null }).best;
  }
}

/** Per-batch progress with images/s and ETA, and the epoch summary, as events. */
export class ProgressCallback implements Callback {
  readonly name = 'progress';
  afterBatch(s: TrainState): void {
    const secs = Math.max(1e-6, s.epochSeconds);
    const perBatch = secs / Math.max(1, s.batch);
    const remaining = s.batchesPerEpoch - s.batch + (s.epochs - s.epoch - 1) * s.batchesPerEpoch;
    s.emit({
      type: 'batch',
      epoch: s.epoch + 1,
      epochs: s.epochs,
      batch: s.batch,
      batches: s.batchesPerEpoch,
      loss: s.epochLoss / Math.max(1, s.epochSeen),
      acc: s.epochCorrect / Math.max(1, s.epochSeen),
      lrs: s.lrsByGroup(),
      imagesPerSec: s.epochSeen / secs,
      etaSeconds: remaining * perBatch,
    });
  }
  afterEpoch(s: TrainState): void {
    s.emit({ type: 'epoch', metrics: s.history[s.history.length - 1] });
  }
}

/** Sets every group's lr before each batch: peak lr x schedule(globalStep) x lrScale. */
export class ScheduleCallback implements Callback {
  readonly name = 'schedule';
  constructor(private readonly multiplierAt: (globalStep: number) => number) {}
  beforeBatch(s: TrainState): void {
    const m = this.multiplierAt(s.globalStep) * s.lrScale;
    const warm = s.config.unfreeze.warmupEpochs;
    const epochNow = s.globalStep / s.batchesPerEpoch;
    const peaks = s.runner.peakLrs();
    s.lrs = s.runner.optimizer.groupNames.map((name, i) => {
      const peak = peaks[i];
      const stage = warm > 0 ? s.plan.stages.find((st) => st.groups.includes(s.plan.names.indexOf(name))) : undefined;
      const ramp = stage ? Math.min(1, Math.max(0, (epochNow - stage.afterEpoch + 1 / s.batchesPerEpoch) / warm)) : 1;
      return peak * m * ramp;
    });
  }
}

/**
 * Saves the `last` checkpoint after every epoch (and when a run stops mid-epoch) and the
 * `best` one whenever BestEpoch saw an improvement. `save` is provided by the trainer,
 * which knows how to serialise the whole run.
 */
export class CheckpointCallback implements Callback {
  readonly name = 'checkpoint';
  constructor(
    private readonly best: BestEpoch,
    private readonly save: (kind: 'best' | 'last', afterEpoch: boolean) => string | null,
  ) {}
  afterEpoch(s: TrainState): void {
    const epoch = s.epoch + 1;
    const last = this.save('last', true);
    if (last) s.emit({ type: 'checkpoint', kind: 'last', epoch, dir: last });
    if (this.best.improvedThisEpoch) {
      const dir = this.save('best', true);
      if (dir) s.emit({ type: 'checkpoint', kind: 'best', epoch, dir });
    }
  }
}
