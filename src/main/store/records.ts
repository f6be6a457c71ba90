/** Rows to contract shapes, and run references (id, id prefix or name) to run ids. */
import { AppError } from '../../shared/errors';
import type { MetricSummary, RunRecord, RunStatus } from '../../shared/contract/runs';
import type { Sql } from './sql';
import { decodeValue, metricDirection } from './values';

/**
 * Run rows are read with `.raw()` (arrays, not keyed objects): a list of 10,000 runs is
 * about twice as fast. Experiment names come from `experimentNames` rather than a join.
 */
export const RECORD_COLUMNS = `r.seq, r.last_epoch, r.id, r.name, r.experiment_id, r.status, r.snapshot_id, r.backbone,
  r.backend, r.seed, r.strategy, r.started_at, r.ended_at,
  r.app_version, r.heartbeat_at, r.notes, r.error, r.last_checkpoint, r.last_checkpoint_epoch`;

export type CoreRaw = [
  number, number | null, string, string, string, RunStatus, string | null, string, string, number, string, number, number | null,
];
export type RecordRaw = [...CoreRaw, string, number | null, string, string | null, string | null, number | null];

/** Experiment id -> name; experiments are few, so lists look names up instead of joining. */
export function experimentNames(sql: Sql): Map<string, string> {
  return new Map(sql.rawAll<[string, string]>('SELECT id, name FROM experiments'));
}

export function toRunRecord(a: RecordRaw, experiments: Map<string, string>): RunRecord {
  return {
    id: a[2],
    name: a[3],
    experimentId: a[4],
    experiment: experiments.get(a[4]) ?? a[4],
    status: a[5],
    snapshotId: a[6],
    backbone: a[7],
    backend: a[8],
    seed: a[9],
    strategy: a[10],
    startedAt: a[11],
    endedAt: a[12],
    appVersion: a[13],
    heartbeatAt: a[14],
    notes: a[15],
    error: a[16],
    lastCheckpoint: a[17],
    lastCheckpointEpoch: a[18],
  };
}

/** Selected in this order and read with `.raw()`: lists fetch tens of thousands of these. */
export const SUMMARY_COLUMNS =
  'run_seq, key, final_value, final_is_nan, final_step, final_epoch, best_value, best_step, best_epoch, count';

export type SummaryRaw = [number, string, number | null, number, number, number, number | null, number | null, number | null, number];

export function toMetricSummary(r: SummaryRaw): MetricSummary {
  return {
    key: r[1],
    direction: metricDirection(r[1]),
    final: decodeValue(r[2], r[3]),
    finalStep: r[4],
    finalEpoch: r[5],
    best: r[6],
    bestStep: r[7],
    bestEpoch: r[8],
    count: r[9],
  };
}

export function notFound(ref: string, file: string): AppError {
  return new AppError(
    'not_found',
    `No run "${ref}" in the experiment log ${file}. Run ids look like r-m1abc2def-x7k2q9; ` +
      `see them with \`finetune runs list\` (or the Runs view). A unique prefix of an id, or a unique run name, also works.`,
  );
}

/** Resolve an exact id, then a unique id prefix, then a unique run name. */
export function resolveRunId(sql: Sql, ref: string, file: string): string {
  const exact = sql.get<{ id: string }>('SELECT id FROM runs WHERE id = ?', ref);
  if (exact) return exact.id;
  // substr() rather than LIKE: ids contain '-' only, but names may contain % and _.
  const byPrefix = sql.all<{ id: string }>('SELECT id FROM runs WHERE substr(id, 1, ?) = ? LIMIT 6', ref.length, ref);
  if (byPrefix.length === 1) return byPrefix[0].id;
  const byName = byPrefix.length ? [] : sql.all<{ id: string }>('SELECT id FROM runs WHERE name = ? LIMIT 6', ref);
  if (byName.length === 1) return byName[0].id;
  const many = byPrefix.length ? byPrefix : byName;
  if (many.length > 1) {
    throw new AppError(
      'ambiguous',
      `"${ref}" matches several runs (${many.map((m) => m.id).slice(0, 5).join(', ')}${many.length > 5 ? ', ...' : ''}). ` +
        `Give more of the id (see \`finetune runs list\`).`,
    );
  }
  throw notFound(ref, file);
}

/** One run record by exact id. */
export function readRunRecord(sql: Sql, id: string, file: string): RunRecord {
  const [row] = sql.rawAll<RecordRaw>(`SELECT ${RECORD_COLUMNS} FROM runs r WHERE r.id = ?`, id);
  if (!row) throw notFound(id, file);
  return toRunRecord(row, experimentNames(sql));
}
