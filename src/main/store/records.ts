/** Rows to contract shapes, and run references (id, id prefix or name) to run ids. */
import { AppError } from '../../shared/errors';
import type { MetricSummary, RunRecord, RunStatus } from '../../shared/contract/runs';
import type { Row, Sql } from './sql';
import { decodeValue, metricDirection } from './values';

/** The columns every run query selects, with the experiment name joined in. */
export const RUN_COLUMNS = `r.id, r.name, r.experiment_id, e.name AS experiment, r.status, r.snapshot_id, r.backbone,
  r.backend, r.seed, r.strategy, r.app_version, r.started_at, r.ended_at, r.heartbeat_at, r.notes, r.error,
  r.last_checkpoint, r.last_checkpoint_epoch`;

export const RUN_FROM = 'runs r JOIN experiments e ON e.id = r.experiment_id';

export function toRunRecord(r: Row): RunRecord {
  return {
    id: r.id as string,
    name: r.name as string,
    experimentId: r.experiment_id as string,
    experiment: r.experiment as string,
    status: r.status as RunStatus,
    snapshotId: (r.snapshot_id as string | null) ?? null,
    backbone: r.backbone as string,
    backend: r.backend as string,
    seed: r.seed as number,
    strategy: r.strategy as string,
    appVersion: r.app_version as string,
    startedAt: r.started_at as number,
    endedAt: (r.ended_at as number | null) ?? null,
    heartbeatAt: (r.heartbeat_at as number | null) ?? null,
    notes: r.notes as string,
    error: (r.error as string | null) ?? null,
    lastCheckpoint: (r.last_checkpoint as string | null) ?? null,
    lastCheckpointEpoch: (r.last_checkpoint_epoch as number | null) ?? null,
  };
}

export const SUMMARY_COLUMNS =
  'run_id, key, final_value, final_is_nan, final_step, final_epoch, best_value, best_step, best_epoch, count';

export function toMetricSummary(r: Row): MetricSummary {
  const key = r.key as string;
  return {
    key,
    direction: metricDirection(key),
    final: decodeValue(r.final_value as number | null, r.final_is_nan as number),
    finalStep: r.final_step as number,
    finalEpoch: r.final_epoch as number,
    best: (r.best_value as number | null) ?? null,
    bestStep: (r.best_step as number | null) ?? null,
    bestEpoch: (r.best_epoch as number | null) ?? null,
    count: r.count as number,
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
  const row = sql.get(`SELECT ${RUN_COLUMNS} FROM ${RUN_FROM} WHERE r.id = ?`, id);
  if (!row) throw notFound(id, file);
  return toRunRecord(row);
}
