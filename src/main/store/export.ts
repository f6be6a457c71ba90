/**
 * Runs as files for other tools. CSV `metrics` is the long format pandas and spreadsheets
 * plot directly (one row per logged value); CSV `runs` is one row per run with params and
 * final/best metrics as columns. JSON cannot hold NaN or ±Infinity, so they are written as
 * the strings "NaN", "Infinity", "-Infinity" (CSV writes the same words, which pandas reads).
 */
import type { RunsExport, RunSummary } from '../../shared/contract/runs';
import type { Sql } from './sql';
import { metricSeries, runDetail, runSummaries } from './queries';
import type { RunSummaryCache } from './run-cache';

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function csvLine(cells: unknown[]): string {
  return cells.map(csvCell).join(',');
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

function nonFiniteAsText(_key: string, value: unknown): unknown {
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return value;
}

function runColumns(r: RunSummary): Record<string, unknown> {
  return {
    run_id: r.id,
    name: r.name,
    experiment: r.experiment,
    status: r.status,
    backbone: r.backbone,
    backend: r.backend,
    seed: r.seed,
    strategy: r.strategy,
    snapshot_id: r.snapshotId,
    app_version: r.appVersion,
    started_at: iso(r.startedAt),
    ended_at: iso(r.endedAt),
    last_epoch: r.lastEpoch,
    tags: r.tags.join(';'),
    notes: r.notes,
  };
}

function runsCsv(sql: Sql, cache: RunSummaryCache, ids: string[]): { text: string; rows: number } {
  const runs = runSummaries(sql, cache, ids);
  const params = new Map<string, Map<string, string>>();
  for (const id of ids) {
    params.set(id, new Map(sql.all<{ key: string; value: string }>('SELECT key, value FROM params WHERE run_id = ?', id).map((p) => [p.key, p.value])));
  }
  const paramKeys = [...new Set([...params.values()].flatMap((m) => [...m.keys()]))].sort();
  const metricKeys = [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort();
  const base = Object.keys(runColumns(runs[0]));
  const header = [
    ...base,
    ...paramKeys.map((k) => `param.${k}`),
    ...metricKeys.flatMap((k) => [`${k}.final`, `${k}.best`, `${k}.best_epoch`]),
  ];
  const lines = [csvLine(header)];
  for (const r of runs) {
    const m = params.get(r.id)!;
    lines.push(
      csvLine([
        ...Object.values(runColumns(r)),
        ...paramKeys.map((k) => m.get(k) ?? null),
        ...metricKeys.flatMap((k) => [r.metrics[k]?.final ?? null, r.metrics[k]?.best ?? null, r.metrics[k]?.bestEpoch ?? null]),
      ]),
    );
  }
  return { text: lines.join('\n') + '\n', rows: runs.length };
}

function metricsCsv(sql: Sql, cache: RunSummaryCache, ids: string[]): { text: string; rows: number } {
  const runs = runSummaries(sql, cache, ids);
  const lines = [csvLine(['run_id', 'run_name', 'experiment', 'key', 'step', 'epoch', 'value', 'time'])];
  for (const r of runs) {
    const { series } = metricSeries(sql, r.id);
    for (const [key, points] of Object.entries(series)) {
      for (const p of points) lines.push(csvLine([r.id, r.name, r.experiment, key, p.step, p.epoch, p.value, iso(p.time)]));
    }
  }
  return { text: lines.join('\n') + '\n', rows: lines.length - 1 };
}

/** Export runs (exact ids) as CSV or JSON text. */
export function exportRunIds(sql: Sql, cache: RunSummaryCache, ids: string[], format: 'csv' | 'json', table: 'metrics' | 'runs', file: string): RunsExport {
  if (format === 'csv') {
    const { text, rows } = table === 'runs' ? runsCsv(sql, cache, ids) : metricsCsv(sql, cache, ids);
    return { format, table, text, runs: ids.length, rows };
  }
  let rows = 0;
  const runs = ids.map((id) => {
    const d = runDetail(sql, cache, id, file);
    const { epochs, ...rest } = d;
    if (table === 'runs') {
      rows++;
      return { ...rest, epochs };
    }
    const { series } = metricSeries(sql, id);
    for (const points of Object.values(series)) rows += points.length;
    return { ...rest, series };
  });
  const doc = { format: 'finetune-studio-runs', version: 1, table, exportedAt: new Date().toISOString(), runs };
  return { format, table, text: JSON.stringify(doc, nonFiniteAsText, 2) + '\n', runs: ids.length, rows };
}
