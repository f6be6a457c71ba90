/**
 * Turns a run's numbers into chart series with x in epochs (batch 30 of 60 in epoch 2 is
 * x = 1.5), from either source: the live event history of a run training now, or the metrics
 * stored in the log for a run that ended. Pure functions, no Svelte.
 */
import type { ChartData } from 'chart.js';
import type { EpochEnd, TrainProgress } from '../../../shared/contract/training';
import type { MetricPoint } from '../../../shared/contract/runs';
import type { Marker } from './chart-setup';
import { seriesColour } from './palette';

export interface Point {
  x: number;
  y: number;
}

export interface RunCurves {
  batchLoss: Point[];
  batchAccuracy: Point[];
  trainLoss: Point[];
  valLoss: Point[];
  trainAccuracy: Point[];
  valAccuracy: Point[];
  /** Per layer group, the lr actually applied at each batch. */
  lrs: Record<string, Point[]>;
  markers: Marker[];
}

const finite = (p: Point) => Number.isFinite(p.y);

/** Curves of a run from the events it streamed (TrainingSession). */
export function curvesFromLive(history: TrainProgress[], epochs: EpochEnd[], unfreezes: { epoch: number; groups: string[] }[]): RunCurves {
  const x = (p: TrainProgress) => p.epoch - 1 + p.batch / Math.max(1, p.batches);
  const lrs: Record<string, Point[]> = {};
  for (const p of history) for (const [g, v] of Object.entries(p.lrs)) (lrs[g] ??= []).push({ x: x(p), y: v });
  const byEpoch = (k: keyof EpochEnd) => epochs.map((e) => ({ x: e.epoch, y: e[k] as number })).filter(finite).sort((a, b) => a.x - b.x);
  return {
    batchLoss: history.map((p) => ({ x: x(p), y: p.loss })).filter(finite),
    batchAccuracy: history.map((p) => ({ x: x(p), y: p.accuracy })).filter(finite),
    trainLoss: byEpoch('train_loss'),
    valLoss: byEpoch('val_loss'),
    trainAccuracy: byEpoch('train_accuracy'),
    valAccuracy: byEpoch('val_accuracy'),
    lrs,
    markers: unfreezeMarkers(unfreezes),
  };
}

/** Spread the batch points of each epoch evenly over (epoch - 1, epoch]. */
function batchPoints(points: MetricPoint[] | undefined): Point[] {
  if (!points?.length) return [];
  const perEpoch = new Map<number, MetricPoint[]>();
  for (const p of points) perEpoch.set(p.epoch, [...(perEpoch.get(p.epoch) ?? []), p]);
  const out: Point[] = [];
  for (const [epoch, ps] of [...perEpoch].sort((a, b) => a[0] - b[0])) {
    ps.sort((a, b) => a.step - b.step);
    ps.forEach((p, i) => out.push({ x: epoch - 1 + (i + 1) / ps.length, y: p.value }));
  }
  return out.filter(finite);
}

/** Curves of a run from its logged metrics (runs:metrics), keys as the run manager writes them. */
export function curvesFromLog(series: Record<string, MetricPoint[]>, unfreezes: { epoch: number; groups: string[] }[] = []): RunCurves {
  const epochPoints = (k: string) => (series[k] ?? []).map((p) => ({ x: p.epoch, y: p.value })).filter(finite);
  const lrs: Record<string, Point[]> = {};
  for (const [k, ps] of Object.entries(series)) if (k.startsWith('lr/')) lrs[k.slice(3)] = batchPoints(ps);
  return {
    batchLoss: batchPoints(series.batch_loss),
    batchAccuracy: batchPoints(series.batch_accuracy),
    trainLoss: epochPoints('train_loss'),
    valLoss: epochPoints('val_loss'),
    trainAccuracy: epochPoints('train_accuracy'),
    valAccuracy: epochPoints('val_accuracy'),
    lrs,
    markers: unfreezeMarkers(unfreezes),
  };
}

/**
 * `epoch` is the 1-based epoch the groups first train in (as train:unfrozen reports it), so the
 * marker sits where that epoch starts: x = epoch - 1.
 */
export function unfreezeMarkers(unfreezes: { epoch: number; groups: string[] }[]): Marker[] {
  return unfreezes.map((u) => ({ x: u.epoch - 1, label: `unfroze ${u.groups.length > 2 ? `${u.groups.length} groups` : u.groups.join(', ')}` }));
}

/**
 * Where groups unfroze in a logged run: a group whose rate first appears (or first leaves zero)
 * later than the earliest group's did. Returns 1-based epochs, like train:unfrozen.
 */
export function unfreezesFromLrs(lrs: Record<string, Point[]>): { epoch: number; groups: string[] }[] {
  const starts = Object.entries(lrs)
    .map(([g, ps]) => ({ g, x: ps.find((p) => p.y > 0)?.x }))
    .filter((s): s is { g: string; x: number } => s.x !== undefined);
  if (!starts.length) return [];
  const first = Math.min(...starts.map((s) => s.x));
  const at = new Map<number, string[]>();
  for (const s of starts) {
    if (s.x <= first + 1e-9) continue;
    const epoch = Math.floor(s.x - 1e-9) + 1;
    at.set(epoch, [...(at.get(epoch) ?? []), s.g]);
  }
  return [...at].map(([epoch, groups]) => ({ epoch, groups }));
}

/** A line dataset; epoch-level series get points, batch-level ones a thin line. */
export function line(label: string, data: Point[], colourIndex: number, opts: { dashed?: boolean; points?: boolean } = {}): ChartData<'line'>['datasets'][number] {
  return {
    label,
    data,
    borderColor: seriesColour(colourIndex),
    backgroundColor: seriesColour(colourIndex),
    borderWidth: opts.points ? 2 : 1.25,
    pointRadius: opts.points ? 3 : 0,
    borderDash: opts.dashed ? [5, 4] : undefined,
    tension: 0,
  };
}
