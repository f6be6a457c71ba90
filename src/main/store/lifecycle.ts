/**
 * A run's life: created running (or queued) and stamped with its owner process; statuses;
 * checkpoints; at startup, runs whose owner died become `interrupted`; resume brings one
 * back to `running` under the same id.
 */
import { AppError } from '../../shared/errors';
import { RUN_STATUSES, type RunRecord, type RunStatus } from '../../shared/contract/runs';
import type { Sql } from './sql';
import { newId } from './ids';
import { currentOwner, isOwnerAlive } from './owner';
import { readRunRecord } from './records';
import { rebuildDerived } from './metrics-writer';
import { flattenConfig } from './values';

export interface CreateRunInput {
  name?: string;
  /** Experiment name; created when missing. Default: "Default". */
  experiment?: string;
  /** The full resolved config; stored as JSON and flattened into params. */
  config: object;
  snapshotId: string | null;
  backbone: string;
  backend: string;
  seed: number;
  strategy: string;
  /** 'running' (default) or 'queued'. */
  status?: 'running' | 'queued';
}

export const DEFAULT_EXPERIMENT = 'Default';
const ENDED: RunStatus[] = ['finished', 'failed', 'stopped', 'interrupted'];
const RESUMABLE: RunStatus[] = ['interrupted', 'stopped', 'failed'];

export function ensureExperiment(sql: Sql, name: string): string {
  const trimmed = name.trim();
  if (!trimmed) throw new AppError('bad_arguments', 'An experiment needs a non-empty name.');
  const row = sql.get<{ id: string }>('SELECT id FROM experiments WHERE name = ?', trimmed);
  if (row) return row.id;
  const id = newId('e');
  sql.run('INSERT INTO experiments (id, name, created_at) VALUES (?, ?, ?)', id, trimmed, Date.now());
  return id;
}

/** Params are written once: the same value again is fine, a different one is an error. */
export function writeParams(sql: Sql, runId: string, params: Record<string, string>): void {
  for (const [key, value] of Object.entries(params)) {
    const old = sql.get<{ value: string }>('SELECT value FROM params WHERE run_id = ? AND key = ?', runId, key);
    if (!old) sql.run('INSERT INTO params (run_id, key, value) VALUES (?, ?, ?)', runId, key, value);
    else if (old.value !== value) {
      throw new AppError(
        'param_conflict',
        `Param "${key}" of run ${runId} is already "${old.value}" and cannot become "${value}": ` +
          `params are written once. Start a new run to try another value.`,
      );
    }
  }
}

export function createRun(sql: Sql, input: CreateRunInput, appVersion: string): string {
  for (const k of ['backbone', 'backend', 'strategy'] as const) {
    if (typeof input[k] !== 'string' || !input[k]) throw new AppError('bad_arguments', `createRun needs a non-empty ${k}; got ${JSON.stringify(input[k])}.`);
  }
  if (!Number.isInteger(input.seed)) throw new AppError('bad_arguments', `createRun needs an integer seed; got ${JSON.stringify(input.seed)}.`);
  const configJson = JSON.stringify(input.config ?? {});
  const params = flattenConfig(input.config ?? {});
  const owner = currentOwner();
  const now = Date.now();
  const id = newId('r', now);
  const experimentId = ensureExperiment(sql, input.experiment ?? DEFAULT_EXPERIMENT);
  const n = sql.get<{ n: number }>('SELECT count(*) + 1 AS n FROM runs WHERE experiment_id = ?', experimentId)!.n;
  sql.run(
    `INSERT INTO runs (id, name, experiment_id, status, config_json, snapshot_id, backbone, backend, seed, strategy,
       app_version, started_at, heartbeat_at, owner_pid, owner_boot, owner_started)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    id, input.name?.trim() || `run-${n}`, experimentId, input.status ?? 'running', configJson, input.snapshotId ?? null,
    input.backbone, input.backend, input.seed, input.strategy, appVersion, now, now, owner.pid, owner.boot, owner.started,
  );
  writeParams(sql, id, params);
  return id;
}

export function setStatus(sql: Sql, runId: string, status: RunStatus, error: string | null, file: string): void {
  if (!RUN_STATUSES.includes(status)) {
    throw new AppError('bad_arguments', `Unknown run status "${status}". Expected one of: ${RUN_STATUSES.join(', ')}.`);
  }
  const ended = ENDED.includes(status) ? Date.now() : null;
  const owner = status === 'running' ? currentOwner() : null;
  const res = sql.run(
    `UPDATE runs SET status = ?, error = ?, ended_at = ?,
       owner_pid = coalesce(?, owner_pid), owner_boot = coalesce(?, owner_boot), owner_started = coalesce(?, owner_started)
     WHERE id = ?`,
    status, error, ended, owner?.pid ?? null, owner?.boot ?? null, owner?.started ?? null, runId,
  );
  if (res.changes === 0) readRunRecord(sql, runId, file);
}

/** Every running run whose owner process is gone becomes interrupted; returns how many. */
export function markInterrupted(sql: Sql): number {
  const running = sql.all<{ id: string; owner_pid: number | null; owner_boot: string | null; owner_started: string | null }>(
    "SELECT id, owner_pid, owner_boot, owner_started FROM runs WHERE status = 'running'",
  );
  let n = 0;
  for (const r of running) {
    if (isOwnerAlive({ pid: r.owner_pid, boot: r.owner_boot, started: r.owner_started })) continue;
    n += sql.run(
      `UPDATE runs SET status = 'interrupted', ended_at = coalesce(heartbeat_at, started_at), error = ?
       WHERE id = ? AND status = 'running'`,
      `The process that ran it (pid ${r.owner_pid ?? '?'}) ended without finishing it (crash, kill or power loss). ` +
        `Resume it from its last checkpoint, or start a new run.`,
      r.id,
    ).changes;
  }
  return n;
}

/** True when the run is running and its owner process is alive. */
export function isRunActive(sql: Sql, runId: string): boolean {
  const r = sql.get<{ status: string; owner_pid: number | null; owner_boot: string | null; owner_started: string | null }>(
    'SELECT status, owner_pid, owner_boot, owner_started FROM runs WHERE id = ?',
    runId,
  );
  return !!r && r.status === 'running' && isOwnerAlive({ pid: r.owner_pid, boot: r.owner_boot, started: r.owner_started });
}

export interface ResumeOptions {
  /**
   * Drop metric rows after this epoch first (the epochs after the checkpoint resumed from,
   * which the resumed run will log again). Default: keep everything.
   */
  discardAfterEpoch?: number;
}

export function resumeRun(sql: Sql, runId: string, opts: ResumeOptions, file: string): RunRecord {
  const run = readRunRecord(sql, runId, file);
  const orphan = run.status === 'running' && !isRunActive(sql, runId);
  if (!RESUMABLE.includes(run.status) && !orphan) {
    throw new AppError(
      'not_resumable',
      `Run ${runId} is ${run.status}${run.status === 'running' ? ' in another live process' : ''}; only ${RESUMABLE.join(', ')} runs can be resumed.` +
        (run.status === 'finished' ? ' Start a new run (its config can be copied) to train further.' : ''),
    );
  }
  if (opts.discardAfterEpoch !== undefined) {
    const { seq } = sql.get<{ seq: number }>('SELECT seq FROM runs WHERE id = ?', runId)!;
    sql.run('DELETE FROM metrics WHERE run_seq = ? AND epoch > ?', seq, opts.discardAfterEpoch);
    rebuildDerived(sql, seq);
  }
  const owner = currentOwner();
  sql.run(
    `UPDATE runs SET status = 'running', ended_at = NULL, error = NULL, heartbeat_at = ?,
       owner_pid = ?, owner_boot = ?, owner_started = ? WHERE id = ?`,
    Date.now(), owner.pid, owner.boot, owner.started, runId,
  );
  return readRunRecord(sql, runId, file);
}
