/**
 * The experiment log: one SQLite file (WAL) holding experiments, runs, params, metrics, tags,
 * artifacts, evaluations and dataset snapshots. The only class in the app that talks to
 * better-sqlite3; every method is synchronous (better-sqlite3 is) and throws AppError.
 */
import type Database from 'better-sqlite3';
import { AppError } from '../../shared/errors';
import { ARTIFACT_KINDS } from '../../shared/contract/runs';
import type {
  Artifact, ArtifactKind, Comparison, SnapshotRecord, ExperimentInfo, RunsExport,
  RunDetail, RunFilter, RunMetrics, RunRecord, RunStatus, RunSummary,
} from '../../shared/contract/runs';
import { translateDbError } from './db-errors';
import { openDatabase, type OpenOptions } from './open';
import { Sql } from './sql';
import { SCHEMA_VERSION } from './migrations';
import { readRunRecord, resolveRunId } from './records';
import { appendMetrics, type MetricRow } from './metrics-writer';
import { listExperiments, listRuns, metricSeries, readArtifacts, readSnapshot, runDetail } from './queries';
import { compareRunIds } from './compare';
import { RunSummaryCache } from './run-cache';
import { exportRunIds } from './export';
import * as life from './lifecycle';
import { flattenConfig } from './values';

export type { MetricRow } from './metrics-writer';
export type { CreateRunInput, ResumeOptions } from './lifecycle';

export class Store {
  private sql: Sql;
  private cache = new RunSummaryCache();
  private closed = false;

  constructor(
    db: Database.Database,
    /** The database file, named in every error. */
    readonly file: string,
    readonly appVersion: string,
    private busyTimeoutMs: number,
  ) {
    this.sql = new Sql(db);
  }

  /** Run `fn`, turning SQLite errors into AppErrors that name the file and what to do. */
  private guard<T>(fn: () => T): T {
    if (this.closed) throw new AppError('db_closed', `The experiment log ${this.file} was closed; reopen it.`);
    try {
      return fn();
    } catch (err) {
      throw translateDbError(err, this.file, this.busyTimeoutMs);
    }
  }

  private resolve(ref: string): string {
    return resolveRunId(this.sql, ref, this.file);
  }

  // ---- schema and health ----
  /** `PRAGMA user_version` of the open file. */
  schemaVersion(): number {
    return this.guard(() => this.sql.db.pragma('user_version', { simple: true }) as number);
  }
  /** 'ok', or the problems SQLite's integrity_check found, one per line. */
  integrityCheck(): string {
    return this.guard(() => (this.sql.db.pragma('integrity_check') as { integrity_check: string }[]).map((r) => r.integrity_check).join('\n'));
  }

  // ---- experiments and snapshots ----
  /** Create a named experiment; its name must be new. Returns its id. */
  createExperiment(name: string): string {
    return this.guard(() =>
      this.sql.tx(() => {
        if (this.sql.get('SELECT 1 FROM experiments WHERE name = ?', name.trim())) {
          throw new AppError('exists', `An experiment named "${name.trim()}" already exists. Pick another name, or add runs to it.`);
        }
        return life.ensureExperiment(this.sql, name);
      }),
    );
  }
  /** The id of the experiment with this name, created when missing. */
  ensureExperiment(name: string): string {
    return this.guard(() => this.sql.tx(() => life.ensureExperiment(this.sql, name)));
  }
  listExperiments(): ExperimentInfo[] {
    return this.guard(() => listExperiments(this.sql));
  }
  /** Record (or update) a dataset snapshot that runs refer to by id. */
  upsertSnapshot(s: { id: string; name: string; root: string; summary: object; createdAt?: number }): void {
    this.guard(() =>
      this.sql.run(
        `INSERT INTO dataset_snapshots (id, name, root, created_at, summary_json) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, root = excluded.root, summary_json = excluded.summary_json`,
        s.id, s.name, s.root, s.createdAt ?? Date.now(), JSON.stringify(s.summary ?? {}),
      ),
    );
  }
  getSnapshot(id: string): SnapshotRecord | null {
    return this.guard(() => readSnapshot(this.sql, id));
  }

  // ---- writing runs (the training service) ----
  /** A new run, status 'running' (or 'queued'), owned by this process, with the config flattened into params. */
  createRun(input: life.CreateRunInput): RunRecord {
    return this.guard(() => {
      const id = this.sql.tx(() => life.createRun(this.sql, input, this.appVersion));
      return readRunRecord(this.sql, id, this.file);
    });
  }
  /** Add params (e.g. derived values); an existing key may only be written again with the same value. */
  logParams(runId: string, params: Record<string, unknown>): void {
    this.guard(() => this.sql.tx(() => {
      readRunRecord(this.sql, runId, this.file);
      life.writeParams(this.sql, runId, flattenConfig(params));
    }));
  }
  /** Append metric rows in ONE transaction (call once per epoch or every N batches). */
  logMetrics(runId: string, rows: readonly MetricRow[]): void {
    if (rows.length === 0) return;
    this.guard(() => {
      if (!appendMetrics(this.sql, runId, rows)) readRunRecord(this.sql, runId, this.file);
    });
  }
  /** Change status; ending statuses stamp ended_at. `error` says why a run failed. */
  setStatus(runId: string, status: RunStatus, opts: { error?: string } = {}): void {
    this.guard(() => life.setStatus(this.sql, runId, status, opts.error ?? null, this.file));
  }
  /**
   * The backend the run's engine chose ("wasm (2 threads)"), known once its worker started:
   * replaces `placeholder` (what the run was created with); a continued run keeps its first.
   */
  fillBackend(runId: string, backend: string, placeholder: string): void {
    this.guard(() => {
      const r = this.sql.run('UPDATE runs SET backend = ? WHERE id = ? AND backend = ?', backend, runId, placeholder);
      if (r.changes === 0) readRunRecord(this.sql, runId, this.file);
    });
  }
  /** The last checkpoint written (and the epoch it ends), which a resume starts from. */
  setCheckpoint(runId: string, path: string, epoch?: number): void {
    this.guard(() => {
      const r = this.sql.run('UPDATE runs SET last_checkpoint = ?, last_checkpoint_epoch = ? WHERE id = ?', path, epoch ?? null, runId);
      if (r.changes === 0) readRunRecord(this.sql, runId, this.file);
    });
  }
  addArtifact(runId: string, a: { kind: ArtifactKind; path: string; size: number; meta?: object }): Artifact {
    if (!ARTIFACT_KINDS.includes(a.kind)) {
      throw new AppError('bad_arguments', `Unknown artifact kind "${a.kind}". Expected one of: ${ARTIFACT_KINDS.join(', ')}.`);
    }
    return this.guard(() => {
      readRunRecord(this.sql, runId, this.file);
      const id = this.sql.run(
        'INSERT INTO artifacts (run_id, kind, path, size, meta_json, created_at) VALUES (?, ?, ?, ?, ?, ?)',
        runId, a.kind, a.path, a.size, JSON.stringify(a.meta ?? {}), Date.now(),
      ).lastInsertRowid;
      return readArtifacts(this.sql, runId).find((x) => x.id === Number(id))!;
    });
  }
  /** Store (replace) a JSON document for a run and split: an evaluation report, an export parity check. */
  saveEvaluation(runId: string, split: string, json: unknown): void {
    this.guard(() => {
      readRunRecord(this.sql, runId, this.file);
      this.sql.run(
        `INSERT INTO evaluations (run_id, split, json, created_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (run_id, split) DO UPDATE SET json = excluded.json, created_at = excluded.created_at`,
        runId, split, JSON.stringify(json), Date.now(),
      );
    });
  }
  /** The stored document, or null when there is none for this split. */
  getEvaluation<T = unknown>(runId: string, split: string): T | null {
    return this.guard(() => {
      const row = this.sql.get<{ json: string }>('SELECT json FROM evaluations WHERE run_id = ? AND split = ?', this.resolve(runId), split);
      return row ? (JSON.parse(row.json) as T) : null;
    });
  }
  /** At startup: running runs whose owner process is gone become 'interrupted'. Returns how many. */
  markInterruptedRuns(): number {
    return this.guard(() => this.sql.tx(() => life.markInterrupted(this.sql)));
  }
  /** Back to 'running' under the same id, owned by this process. */
  resumeRun(runId: string, opts: life.ResumeOptions = {}): RunRecord {
    return this.guard(() => this.sql.tx(() => life.resumeRun(this.sql, this.resolve(runId), opts, this.file)));
  }
  /** True when the run is 'running' in a live process (this one or another). */
  isRunActive(runId: string): boolean {
    return this.guard(() => life.isRunActive(this.sql, this.resolve(runId)));
  }

  // ---- reading (run references may be an id, a unique id prefix or a unique name) ----
  resolveRunId(ref: string): string {
    return this.guard(() => this.resolve(ref));
  }
  getRunRecord(ref: string): RunRecord {
    return this.guard(() => readRunRecord(this.sql, this.resolve(ref), this.file));
  }
  listRuns(filter: RunFilter = {}): RunSummary[] {
    return this.guard(() => listRuns(this.sql, this.cache, filter));
  }
  getRun(ref: string): RunDetail {
    return this.guard(() => runDetail(this.sql, this.cache, this.resolve(ref), this.file));
  }
  getMetrics(ref: string, opts: { keys?: string[]; afterStep?: number } = {}): RunMetrics {
    return this.guard(() => metricSeries(this.sql, this.resolve(ref), opts));
  }
  /** Params that differ (all with `all`), final/best metrics, curves by epoch, warnings. */
  compareRuns(refs: string[], opts: { all?: boolean } = {}): Comparison {
    return this.guard(() => {
      const ids = this.resolveDistinct(refs);
      if (ids.length < 2) throw new AppError('bad_arguments', `Compare needs at least two different runs; got ${refs.length === 1 ? 'one' : 'the same run twice'}.`);
      return compareRunIds(this.sql, this.cache, ids, opts.all ?? false);
    });
  }
  exportRuns(refs: string[], format: 'csv' | 'json', opts: { table?: 'metrics' | 'runs' } = {}): RunsExport {
    if (format !== 'csv' && format !== 'json') throw new AppError('bad_arguments', `Unknown export format "${format}". Expected one of: csv, json.`);
    return this.guard(() => exportRunIds(this.sql, this.cache, this.resolveDistinct(refs), format, opts.table ?? 'metrics', this.file));
  }
  private resolveDistinct(refs: string[]): string[] {
    return [...new Set(refs.map((r) => this.resolve(r)))];
  }

  // ---- editing ----
  /** Add a tag (idempotent); returns the run's tags. */
  tag(ref: string, tag: string): string[] {
    const t = tag.trim();
    if (!t || /[\r\n]/.test(t)) throw new AppError('bad_arguments', `A tag must be one non-empty line; got ${JSON.stringify(tag)}.`);
    return this.guard(() => this.sql.tx(() => {
      const id = this.resolve(ref);
      this.sql.run('INSERT OR IGNORE INTO tags (run_id, tag) VALUES (?, ?)', id, t);
      return this.tagsOf(id);
    }));
  }
  untag(ref: string, tag: string): string[] {
    return this.guard(() => this.sql.tx(() => {
      const id = this.resolve(ref);
      this.sql.run('DELETE FROM tags WHERE run_id = ? AND tag = ?', id, tag.trim());
      return this.tagsOf(id);
    }));
  }
  private tagsOf(id: string): string[] {
    return this.sql.all<{ tag: string }>('SELECT tag FROM tags WHERE run_id = ? ORDER BY tag', id).map((r) => r.tag);
  }
  /** Replace the run's notes. */
  note(ref: string, text: string): string {
    return this.guard(() => {
      const id = this.resolve(ref);
      this.sql.run('UPDATE runs SET notes = ? WHERE id = ?', text, id);
      return id;
    });
  }
  /** Delete a run and everything logged for it (files on disk are the caller's business). */
  deleteRun(ref: string, opts: { force?: boolean } = {}): string {
    return this.guard(() => this.sql.tx(() => {
      const id = this.resolve(ref);
      if (!opts.force && life.isRunActive(this.sql, id)) {
        throw new AppError('run_active', `Run ${id} is still running (pid alive). Stop it first, then delete it.`);
      }
      this.sql.run('DELETE FROM runs WHERE id = ?', id);
      return id;
    }));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sql.db.close();
  }
}

/** Open the log at `dbPath` (created and migrated as needed). */
export function openStore(dbPath: string, options: OpenOptions): Store {
  const db = openDatabase(dbPath, options);
  return new Store(db, dbPath, options.appVersion, options.busyTimeoutMs ?? 5000);
}

export { SCHEMA_VERSION };
