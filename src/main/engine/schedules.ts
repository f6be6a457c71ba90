/**
 * Learning-rate schedules as pure functions of progress (fastai `sched_cos`, `combine_scheds`):
 * `(pos in 0..1) => multiplier of the peak lr`, evaluated every batch. Parameters that users
 * think of in epochs (step size, T0, half cycle, warm-up) are converted to positions here, so
 * the same function draws the preview curve and drives training. Reduce-on-plateau depends on
 * metrics, not progress, so it is a callback (callbacks.ts) that scales these values.
 */
import { AppError } from '../../shared/errors';
import { SCHEDULE_NAMES, parseConfig, type ScheduleConfig, type TrainConfig, type TrainConfigInput } from './config';

export type ScheduleFn = (pos: number) => number;

export interface ScheduleSpan {
  /** Epochs the schedule spans (one phase, or the whole run). */
  epochs: number;
  /** Batches per epoch; only exp_range's per-batch gamma needs it. */
  stepsPerEpoch: number;
}

// pos * epochs lands a hair below an integer at epoch boundaries (e.g. 2.9999999996).
const EPS = 1e-9;

/** Cosine from `start` at pct 0 to `end` at pct 1. */
export function annealCos(start: number, end: number, pct: number): number {
  return end + ((start - end) / 2) * (1 + Math.cos(Math.PI * Math.min(1, Math.max(0, pct))));
}

function cosineRestarts(e: number, t0: number, tMult: number, minMult: number): number {
  let start = 0;
  let period = t0;
  if (tMult === 1) {
    start = Math.floor((e + EPS) / t0) * t0;
  } else {
    const n = Math.floor(Math.log(((e + EPS) / t0) * (tMult - 1) + 1) / Math.log(tMult));
    start = (t0 * (tMult ** n - 1)) / (tMult - 1);
    period = t0 * tMult ** n;
  }
  return annealCos(1, minMult, Math.max(0, e - start) / period);
}

function cyclical(e: number, c: ScheduleConfig, stepsPerEpoch: number): number {
  // PyTorch CyclicLR with the half cycle in epochs; the result is a multiplier of max_lr.
  const half = c.halfCycleEpochs;
  const cycle = Math.floor(1 + (e + EPS) / (2 * half));
  const x = Math.abs(e / half - 2 * cycle + 1);
  let scale = Math.max(0, 1 - x);
  if (c.cyclicMode === 'triangular2') scale /= 2 ** (cycle - 1);
  else if (c.cyclicMode === 'exp_range') scale *= c.gamma ** Math.round(e * stepsPerEpoch);
  return c.baseMult + (1 - c.baseMult) * scale;
}

/** The schedule without warm-up, over `epochs` epochs. */
function baseSchedule(c: ScheduleConfig, span: ScheduleSpan): ScheduleFn {
  const E = span.epochs;
  switch (c.name) {
    case 'constant':
      return () => 1;
    case 'step':
      return (p) => c.gamma ** Math.floor((p * E + EPS) / c.stepEpochs);
    case 'multi-step': {
      const ms = [...c.milestones].sort((a, b) => a - b);
      return (p) => c.gamma ** ms.filter((m) => p * E + EPS >= m).length;
    }
    case 'exponential':
      return (p) => c.gamma ** (p * E);
    case 'cosine':
      return (p) => annealCos(1, c.minMult, p);
    case 'cosine-restarts':
      return (p) => cosineRestarts(p * E, c.t0Epochs, c.tMult, c.minMult);
    case 'cyclical':
      return (p) => cyclical(p * E, c, span.stepsPerEpoch);
    case 'one-cycle': {
      const lo = 1 / c.divFactor;
      const end = lo / c.finalDivFactor;
      return (p) => (p < c.pctStart ? annealCos(lo, 1, p / c.pctStart) : annealCos(1, end, (p - c.pctStart) / (1 - c.pctStart || 1)));
    }
    default:
      throw new AppError('invalid-config', `Unknown schedule "${(c as { name: string }).name}". Expected one of: ${SCHEDULE_NAMES.join(', ')}.`);
  }
}

/**
 * The schedule of `c` over a span: linear warm-up from warmupStartMult to the schedule's
 * starting value over warmupEpochs, then the schedule over the remaining epochs.
 */
export function buildSchedule(c: ScheduleConfig, span: ScheduleSpan): ScheduleFn {
  if (!(SCHEDULE_NAMES as readonly string[]).includes(c.name)) {
    throw new AppError('invalid-config', `Unknown schedule "${c.name}". Expected one of: ${SCHEDULE_NAMES.join(', ')}.`);
  }
  const warm = Math.min(c.warmupEpochs, span.epochs);
  if (warm <= 0) return baseSchedule(c, span);
  const w = warm / span.epochs;
  const rest = span.epochs - warm;
  const inner = rest > 0 ? baseSchedule(c, { ...span, epochs: rest }) : () => 1;
  const top = inner(0);
  return (p) => (p < w ? c.warmupStartMult + (top - c.warmupStartMult) * (p / w) : inner(w < 1 ? (p - w) / (1 - w) : 1));
}

export interface Phase {
  /** 0-based epoch where the phase starts, and its length in epochs. */
  startEpoch: number;
  epochs: number;
}

/** Phases of a run: split at each unfreezing stage when the schedule's scope is 'phase'. */
export function schedulePhases(config: TrainConfig): Phase[] {
  const cuts = new Set<number>([0]);
  if (config.schedule.scope === 'phase') {
    for (const s of config.unfreeze.stages) if (s.afterEpoch > 0 && s.afterEpoch < config.epochs) cuts.add(s.afterEpoch);
  }
  const starts = [...cuts].sort((a, b) => a - b);
  return starts.map((s, i) => ({ startEpoch: s, epochs: (starts[i + 1] ?? config.epochs) - s }));
}

/**
 * The lr multiplier at every global step of a run: pure, so a resumed run picks up the curve
 * exactly where it stopped. `stepsPerEpoch` may be fractional for previews.
 */
export function runSchedule(config: TrainConfig, stepsPerEpoch: number): (globalStep: number) => number {
  const phases = schedulePhases(config).map((ph) => ({ ...ph, fn: buildSchedule(config.schedule, { epochs: ph.epochs, stepsPerEpoch }) }));
  return (step) => {
    const epoch = step / stepsPerEpoch;
    let ph = phases[0];
    for (const p of phases) if (epoch + EPS >= p.startEpoch) ph = p;
    const pos = (step - ph.startEpoch * stepsPerEpoch) / (ph.epochs * stepsPerEpoch);
    return ph.fn(Math.min(1, Math.max(0, pos)));
  };
}

export interface SchedulePoint {
  step: number;
  /** Fractional epoch (0-based) at this step. */
  epoch: number;
  multiplier: number;
  /** Head learning rate: optimizer.lr x multiplier. */
  lr: number;
}

/**
 * The curve the GUI draws before training: `points` samples over `totalSteps` batches.
 * Accepts a partial config (defaults filled in); unknown names throw AppError.
 */
export function previewSchedule(config: TrainConfigInput | TrainConfig, totalSteps: number, points = 200): SchedulePoint[] {
  const c = parseConfig(config);
  const spe = Math.max(1e-9, totalSteps / c.epochs);
  const at = runSchedule(c, spe);
  const n = Math.max(2, Math.min(points, totalSteps + 1));
  const out: SchedulePoint[] = [];
  for (let i = 0; i < n; i++) {
    const step = Math.round((i * totalSteps) / (n - 1));
    const m = at(step);
    out.push({ step, epoch: step / spe, multiplier: m, lr: c.optimizer.lr * m });
  }
  return out;
}
