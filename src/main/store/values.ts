/**
 * Pure helpers around stored values: which way a metric improves, how NaN is encoded,
 * how the per-key final/best cache is merged, and how a config becomes flat params.
 */
import type { MetricDirection } from '../../shared/contract/runs';

const directions = new Map<string, MetricDirection>();

/** Accuracy-like keys are better high, loss-like keys better low; anything else has no best. */
export function metricDirection(key: string): MetricDirection {
  let d = directions.get(key);
  if (d !== undefined) return d;
  const k = key.toLowerCase();
  d = /(loss|error|mse|mae|rmse|perplexity)/.test(k) ? 'min' : /(acc|f1|precision|recall|auc|top\d)/.test(k) ? 'max' : null;
  if (directions.size < 10_000) directions.set(key, d);
  return d;
}

/** SQLite cannot store NaN (it becomes NULL), so NaN travels as (NULL, is_nan = 1). */
export function encodeValue(value: number): [number | null, 0 | 1] {
  return Number.isNaN(value) ? [null, 1] : [value, 0];
}

export function decodeValue(value: number | null, isNan: number): number | null {
  if (isNan) return NaN;
  return value;
}

/** The cached final/best of one key; `null` fields before the first value. */
export interface SummaryState {
  finalValue: number;
  finalStep: number;
  finalEpoch: number;
  bestValue: number | null;
  bestStep: number | null;
  bestEpoch: number | null;
  count: number;
}

/**
 * Fold one value into a key's summary, in place (this runs once per metric row). Final is
 * the value at the highest step (a later write of the same step wins, as after a resume);
 * best ignores NaN.
 */
export function foldSummary(
  s: SummaryState | null,
  direction: MetricDirection,
  step: number,
  epoch: number,
  value: number,
): SummaryState {
  if (!s) {
    s = { finalValue: value, finalStep: step, finalEpoch: epoch, bestValue: null, bestStep: null, bestEpoch: null, count: 0 };
  } else if (step >= s.finalStep) {
    s.finalValue = value;
    s.finalStep = step;
    s.finalEpoch = epoch;
  }
  s.count++;
  if (direction && value === value) {
    const b = s.bestValue;
    if (b === null || (direction === 'max' ? value > b : value < b)) {
      s.bestValue = value;
      s.bestStep = step;
      s.bestEpoch = epoch;
    }
  }
  return s;
}

/**
 * Flatten a config to dotted keys (`optimizer.lr`), the way MLflow logs params. Arrays and
 * scalars become their JSON text (strings stay bare), so equal values compare equal as text.
 */
export function flattenConfig(config: unknown, prefix = '', out: Record<string, string> = {}): Record<string, string> {
  if (config !== null && typeof config === 'object' && !Array.isArray(config)) {
    const entries = Object.entries(config as Record<string, unknown>);
    if (entries.length === 0 && prefix) out[prefix] = '{}';
    for (const [k, v] of entries) {
      if (v === undefined || typeof v === 'function') continue;
      flattenConfig(v, prefix ? `${prefix}.${k}` : k, out);
    }
    return out;
  }
  if (!prefix) return out;
  out[prefix] = typeof config === 'string' ? config : JSON.stringify(config) ?? String(config);
  return out;
}
