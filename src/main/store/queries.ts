/** Read side of the log: lists, one run in full, metric series, experiments. */
import { AppError } from '../../shared/errors';
import { runFilterSchema } from '../../shared/contract/runs';
import type {
  Artifact,
  ArtifactKind,
  SnapshotRecord,
  ExperimentInfo,
  MetricPoint,
  RunDetail,
  RunFilter,
  RunMetrics,
  RunSummary,
} from '../../shared/contract/runs';
import type { Row, Sql } from './sql';
import { readRunRecord } from './records';
import { summariesBySeq, type RunSummaryCache } from './run-cache';
import { decodeValue, metricDirection } from './values';

const COLUMN_SORTS: Record<string, string> = {
  started: 'r.started_at',
  ended: 'r.ended_at',
  name: 'r.name',
  status: 'r.status',
};

/** Experiment name or id to id, with the known names in the error. */
export function findExperimentId(sql: Sql, nameOrId: string): string {
  const row = sql.get<{ id: string }>('SELECT id FROM experiments WHERE name = ? OR id = ?', nameOrId, nameOrId);
  if (row) return row.id;
  const names = sql.all<{ name: string }>('SELECT name FROM experiments ORDER BY name LIMIT 20').map((r) => r.name);
  throw new AppError(
    'not_found',
    `No experiment "${nameOrId}". Known experiments: ${names.length ? names.join(', ') : '(none yet: start a run first)'}.`,
  );
}

/**
 * Runs matching the filter. Sorting by a metric key uses its best value (its final value
 * when the key has no direction), better end first; runs without the metric come last.
 */
export function listRuns(sql: Sql, cache: RunSummaryCache, filter: RunFilter = {}): RunSummary[] {
  const f = runFilterSchema.parse(filter);
  const where: string[] = [];
  const params: unknown[] = [];
  if (f.experiment) {
    where.push('r.experiment_id = ?');
    params.push(findExperimentId(sql, f.experiment));
  }
  if (f.status) {
    where.push('r.status = ?');
    params.push(f.status);
  }
  if (f.tag) {
    where.push('EXISTS (SELECT 1 FROM tags t WHERE t.run_id = r.id AND t.tag = ?)');
    params.push(f.tag);
  }
  const sort = f.sort ?? 'started';
  let join = '';
  let order: string;
  if (COLUMN_SORTS[sort]) {
    const dir = f.order ?? (sort === 'name' || sort === 'status' ? 'asc' : 'desc');
    order = `${COLUMN_SORTS[sort]} ${dir}, r.seq ${dir}`;
  } else {
    join = 'LEFT JOIN metric_summary s ON s.run_seq = r.seq AND s.key = ?';
    params.unshift(sort);
    const dir = f.order ?? (metricDirection(sort) === 'min' ? 'asc' : 'desc');
    order = `(COALESCE(s.best_value, s.final_value) IS NULL), COALESCE(s.best_value, s.final_value) ${dir}, r.started_at DESC`;
  }
  // SQL filters and orders (one implementation of the semantics); rows come from the cache.
  const text = `SELECT r.seq FROM runs r ${join}
    ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY ${order} LIMIT ? OFFSET ?`;
  return sql.read(() => summariesBySeq(sql, cache, sql.pluckAll<number>(text, ...params, f.limit, f.offset)));
}

/** Summaries of these runs (exact ids), in this order. */
export function runSummaries(sql: Sql, cache: RunSummaryCache, ids: string[]): RunSummary[] {
  return sql.read(() => {
    if (cache.warm) {
      cache.sync(sql);
      return cache.byIds(ids);
    }
    const seqs = sql.pluckAll<number>('SELECT seq FROM runs WHERE id IN (SELECT value FROM json_each(?))', JSON.stringify(ids));
    const byId = new Map(summariesBySeq(sql, cache, seqs).map((r) => [r.id, r]));
    return ids.map((id) => byId.get(id)).filter((r): r is RunSummary => !!r);
  });
}

interface PointRow {
  key: string;
  step: number;
  epoch: number;
  value: number | null;
  is_nan: number;
  time: number;
}

function toPoint(r: PointRow): MetricPoint {
  return { step: r.step, epoch: r.epoch, value: decodeValue(r.value, r.is_nan) as number, time: r.time };
}

/** Per key, the last step of each epoch, for many runs at once: runId -> key -> points. */
export function epochSeries(sql: Sql, ids: string[]): Map<string, Record<string, MetricPoint[]>> {
  const out = new Map<string, Record<string, MetricPoint[]>>(ids.map((id) => [id, {}]));
  const rows = sql.all<PointRow & { run_id: string }>(
    `SELECT r.id AS run_id, m.key, m.epoch, m.step, m.value, m.is_nan, m.time
     FROM epoch_metrics m JOIN runs r ON r.seq = m.run_seq
     WHERE r.id IN (SELECT value FROM json_each(?)) ORDER BY m.run_seq, m.key, m.epoch`,
    JSON.stringify(ids),
  );
  for (const r of rows) {
    const rec = out.get(r.run_id)!;
    (rec[r.key] ??= []).push(toPoint(r));
  }
  return out;
}

function toSnapshot(r: Row): SnapshotRecord {
  return {
    id: r.id as string,
    name: r.name as string,
    root: r.root as string,
    createdAt: r.created_at as number,
    summary: JSON.parse(r.summary_json as string),
  };
}

export function readSnapshot(sql: Sql, id: string): SnapshotRecord | null {
  const r = sql.get('SELECT id, name, root, created_at, summary_json FROM dataset_snapshots WHERE id = ?', id);
  return r ? toSnapshot(r) : null;
}

export function readArtifacts(sql: Sql, runId: string): Artifact[] {
  return sql
    .all('SELECT id, kind, path, size, meta_json, created_at FROM artifacts WHERE run_id = ? ORDER BY id', runId)
    .map((a) => ({
      id: a.id as number,
      kind: a.kind as ArtifactKind,
      path: a.path as string,
      size: a.size as number,
      meta: JSON.parse(a.meta_json as string),
      createdAt: a.created_at as number,
    }));
}

/** Everything about one run (by exact id). */
export function runDetail(sql: Sql, cache: RunSummaryCache, id: string, file: string): RunDetail {
  const [summary] = runSummaries(sql, cache, [id]);
  if (!summary) readRunRecord(sql, id, file); // throws not_found
  const config = sql.get<{ config_json: string }>('SELECT config_json FROM runs WHERE id = ?', id)!;
  const params: Record<string, string> = {};
  for (const p of sql.all<{ key: string; value: string }>('SELECT key, value FROM params WHERE run_id = ? ORDER BY key', id)) {
    params[p.key] = p.value;
  }
  return {
    ...summary,
    config: JSON.parse(config.config_json),
    params,
    artifacts: readArtifacts(sql, id),
    epochs: epochSeries(sql, [id]).get(id) ?? {},
    evaluations: sql
      .all<{ split: string; created_at: number }>('SELECT split, created_at FROM evaluations WHERE run_id = ? ORDER BY split', id)
      .map((e) => ({ split: e.split, createdAt: e.created_at })),
    snapshot: summary.snapshotId ? readSnapshot(sql, summary.snapshotId) : null,
  };
}

/** Every logged point of a run (by exact id), per key, by step. */
export function metricSeries(sql: Sql, id: string, opts: { keys?: string[]; afterStep?: number } = {}): RunMetrics {
  const seq = sql.get<{ seq: number }>('SELECT seq FROM runs WHERE id = ?', id)?.seq ?? -1;
  const allKeys = sql
    .all<{ key: string }>('SELECT key FROM metric_summary WHERE run_seq = ? ORDER BY key', seq)
    .map((k) => k.key);
  const keys = opts.keys ? allKeys.filter((k) => opts.keys!.includes(k)) : allKeys;
  const series: Record<string, MetricPoint[]> = {};
  const after = opts.afterStep ?? -1;
  for (const key of keys) {
    series[key] = sql
      .all<PointRow>(
        'SELECT key, step, epoch, value, is_nan, time FROM metrics WHERE run_seq = ? AND key = ? AND step > ? ORDER BY step, id',
        seq,
        key,
        after,
      )
      .map(toPoint);
  }
  return { runId: id, keys, series };
}

export function listExperiments(sql: Sql): ExperimentInfo[] {
  return sql
    .all(
      `SELECT e.id, e.name, e.created_at, count(r.id) AS run_count, max(r.started_at) AS last_run_at
       FROM experiments e LEFT JOIN runs r ON r.experiment_id = e.id GROUP BY e.id ORDER BY e.name`,
    )
    .map((e) => ({
      id: e.id as string,
      name: e.name as string,
      createdAt: e.created_at as number,
      runCount: e.run_count as number,
      lastRunAt: (e.last_run_at as number | null) ?? null,
    }));
}
