/**
 * Side-by-side comparison of runs, the way MLflow's and DVC's compare views work: by default
 * only the params that differ, final and best of every metric, and per-epoch curves aligned
 * on the epoch axis. Warns when the runs cannot be compared fairly (different data).
 */
import type { Comparison, CurveComparison, MetricComparison, ParamComparison } from '../../shared/contract/runs';
import type { Sql } from './sql';
import { epochSeries, runSummaries } from './queries';
import type { RunSummaryCache } from './run-cache';
import { metricDirection } from './values';

/** Compare runs given by exact, distinct ids (at least two), in that order. */
export function compareRunIds(sql: Sql, cache: RunSummaryCache, ids: string[], all: boolean): Comparison {
  const runs = runSummaries(sql, cache, ids);

  const paramValues = new Map<string, (string | null)[]>();
  const rows = sql.all<{ run_id: string; key: string; value: string }>(
    'SELECT run_id, key, value FROM params WHERE run_id IN (SELECT value FROM json_each(?))',
    JSON.stringify(ids),
  );
  const index = new Map(ids.map((id, i) => [id, i]));
  for (const p of rows) {
    let values = paramValues.get(p.key);
    if (!values) paramValues.set(p.key, (values = ids.map(() => null)));
    values[index.get(p.run_id)!] = p.value;
  }
  const params: ParamComparison[] = [];
  let sameParams = 0;
  for (const key of [...paramValues.keys()].sort()) {
    const values = paramValues.get(key)!;
    const differs = values.some((v) => v !== values[0]);
    if (!differs) sameParams++;
    if (differs || all) params.push({ key, values, differs });
  }

  const metricKeys = [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort();
  const metrics: MetricComparison[] = metricKeys.map((key) => {
    const direction = metricDirection(key);
    const final = runs.map((r) => r.metrics[key]?.final ?? null);
    const best = runs.map((r) => r.metrics[key]?.best ?? null);
    const bestEpoch = runs.map((r) => r.metrics[key]?.bestEpoch ?? null);
    let bestRun: number | null = null;
    if (direction) {
      best.forEach((b, i) => {
        if (b === null) return;
        const current = bestRun === null ? null : best[bestRun];
        if (current === null || (direction === 'max' ? b > current : b < current)) bestRun = i;
      });
    }
    return { key, direction, final, best, bestEpoch, bestRun };
  });

  const series = epochSeries(sql, ids);
  const curves: CurveComparison[] = metricKeys.map((key) => {
    const epochSet = new Set<number>();
    for (const id of ids) for (const p of series.get(id)?.[key] ?? []) epochSet.add(p.epoch);
    const epochs = [...epochSet].sort((a, b) => a - b);
    const at = new Map(epochs.map((e, i) => [e, i]));
    const values = ids.map((id) => {
      const row: (number | null)[] = epochs.map(() => null);
      for (const p of series.get(id)?.[key] ?? []) row[at.get(p.epoch)!] = p.value;
      return row;
    });
    return { key, epochs, values };
  });

  const warnings: string[] = [];
  const snapshots = new Set(runs.map((r) => r.snapshotId ?? '(none)'));
  if (snapshots.size > 1) {
    warnings.push(
      `The runs used different dataset snapshots (${runs.map((r) => `${r.id}: ${r.snapshotId ?? 'none'}`).join(', ')}): ` +
        `their metrics were measured on different data and are not directly comparable.`,
    );
  }
  const live = runs.filter((r) => r.status === 'running' || r.status === 'queued');
  if (live.length) {
    warnings.push(`Still ${live.length === 1 ? 'running' : 'running or queued'}: ${live.map((r) => r.id).join(', ')}; their final values will change.`);
  }
  return { runs, params, sameParams, metrics, curves, warnings };
}
