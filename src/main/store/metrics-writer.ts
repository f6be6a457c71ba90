/**
 * Appending metric rows. One call is one transaction: the rows, the per-epoch cache, the
 * final/best cache and the run's heartbeat commit together or not at all, so a crash never
 * leaves half an epoch behind and readers (the UI, WAL) always see whole epochs.
 */
import { AppError } from '../../shared/errors';
import type { MetricDirection } from '../../shared/contract/runs';
import type { Sql } from './sql';
import { encodeValue, foldSummary, metricDirection, type SummaryState } from './values';

export interface MetricRow {
  key: string;
  step: number;
  epoch: number;
  value: number;
  /** ms since the Unix epoch; defaults to the time of the call. */
  time?: number;
}

const INSERT_METRIC = 'INSERT INTO metrics (run_seq, key, step, epoch, value, is_nan, time) VALUES (?, ?, ?, ?, ?, ?, ?)';
const UPSERT_EPOCH = `INSERT INTO epoch_metrics (run_seq, key, epoch, step, value, is_nan, time) VALUES (?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (run_seq, key, epoch) DO UPDATE SET step = excluded.step, value = excluded.value,
  is_nan = excluded.is_nan, time = excluded.time WHERE excluded.step >= epoch_metrics.step`;
const GET_SUMMARY = `SELECT final_value, final_is_nan, final_step, final_epoch, best_value, best_step, best_epoch, count
  FROM metric_summary WHERE run_seq = ? AND key = ?`;
const PUT_SUMMARY = `INSERT OR REPLACE INTO metric_summary
  (run_seq, key, final_value, final_is_nan, final_step, final_epoch, best_value, best_step, best_epoch, count)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

function badRow(i: number, row: unknown, what: string): AppError {
  return new AppError(
    'bad_metric',
    `Metric row ${i} (${JSON.stringify(row)}) ${what}. Expected { key: non-empty string, step: integer >= 0, epoch: integer >= 0, value: number, time?: ms }.`,
  );
}

interface EpochLast {
  key: string;
  epoch: number;
  step: number;
  value: number;
  time: number;
}

/** Collects what one batch changes in the derived caches, then writes it. */
class DerivedBatch {
  private epochs = new Map<string, EpochLast>();
  private summaries = new Map<string, { direction: MetricDirection; state: SummaryState | null }>();

  constructor(
    private sql: Sql,
    private runSeq: number,
    private loadExisting: boolean,
  ) {}

  add(key: string, step: number, epoch: number, value: number, time: number): void {
    const ek = `${key}\u0000${epoch}`;
    const last = this.epochs.get(ek);
    if (!last || step >= last.step) this.epochs.set(ek, { key, epoch, step, value, time });
    let s = this.summaries.get(key);
    if (!s) {
      s = { direction: metricDirection(key), state: this.loadExisting ? this.readSummary(key) : null };
      this.summaries.set(key, s);
    }
    s.state = foldSummary(s.state, s.direction, step, epoch, value);
  }

  private readSummary(key: string): SummaryState | null {
    const r = this.sql.get<Record<string, number | null>>(GET_SUMMARY, this.runSeq, key);
    if (!r) return null;
    return {
      finalValue: r.final_is_nan ? NaN : (r.final_value as number),
      finalStep: r.final_step as number,
      finalEpoch: r.final_epoch as number,
      bestValue: r.best_value,
      bestStep: r.best_step,
      bestEpoch: r.best_epoch,
      count: r.count as number,
    };
  }

  write(): void {
    const upsertEpoch = this.sql.q(UPSERT_EPOCH);
    for (const e of this.epochs.values()) {
      const [v, nan] = encodeValue(e.value);
      upsertEpoch.run(this.runSeq, e.key, e.epoch, e.step, v, nan, e.time);
    }
    const put = this.sql.q(PUT_SUMMARY);
    for (const [key, { state: s }] of this.summaries) {
      if (!s) continue;
      const [fv, fnan] = encodeValue(s.finalValue);
      put.run(this.runSeq, key, fv, fnan, s.finalStep, s.finalEpoch, s.bestValue, s.bestStep, s.bestEpoch, s.count);
    }
  }
}

/**
 * Append `rows` to run `runId` in one transaction. Returns false when the run does not exist
 * (nothing written). Validation happens row by row inside the transaction, so a bad row
 * rolls back the whole batch.
 */
export function appendMetrics(sql: Sql, runId: string, rows: readonly MetricRow[], now = Date.now()): boolean {
  return sql.tx(() => {
    const run = sql.get<{ seq: number }>('SELECT seq FROM runs WHERE id = ?', runId);
    if (!run) return false;
    let lastEpoch = -1;
    const insert = sql.q(INSERT_METRIC);
    const derived = new DerivedBatch(sql, run.seq, true);
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i];
      const { key, step, epoch, value } = r;
      const time = r.time ?? now;
      if (typeof key !== 'string' || key.length === 0) throw badRow(i, r, 'has no key');
      if (!Number.isInteger(step) || step < 0) throw badRow(i, r, 'has a bad step');
      if (!Number.isInteger(epoch) || epoch < 0) throw badRow(i, r, 'has a bad epoch');
      if (typeof value !== 'number') throw badRow(i, r, 'has a value that is not a number');
      if (!Number.isFinite(time)) throw badRow(i, r, 'has a bad time');
      const nan = Number.isNaN(value);
      insert.run(run.seq, key, step, epoch, nan ? null : value, nan ? 1 : 0, Math.round(time));
      derived.add(key, step, epoch, value, time);
      if (epoch > lastEpoch) lastEpoch = epoch;
    }
    derived.write();
    sql.run('UPDATE runs SET heartbeat_at = ?, last_epoch = max(coalesce(last_epoch, -1), ?) WHERE seq = ?', now, lastEpoch, run.seq);
    return true;
  });
}

/**
 * Recompute the per-epoch and final/best caches of a run from its metric rows, in insertion
 * order (the same fold as appendMetrics). Call inside a transaction.
 */
export function rebuildDerived(sql: Sql, runSeq: number): void {
  sql.run('DELETE FROM epoch_metrics WHERE run_seq = ?', runSeq);
  sql.run('DELETE FROM metric_summary WHERE run_seq = ?', runSeq);
  const derived = new DerivedBatch(sql, runSeq, false);
  const rows = sql.q('SELECT key, step, epoch, value, is_nan, time FROM metrics WHERE run_seq = ? ORDER BY id').iterate(runSeq);
  for (const r of rows as Iterable<{ key: string; step: number; epoch: number; value: number | null; is_nan: number; time: number }>) {
    derived.add(r.key, r.step, r.epoch, r.is_nan ? NaN : (r.value as number), r.time);
  }
  derived.write();
  sql.run('UPDATE runs SET last_epoch = (SELECT max(epoch) FROM epoch_metrics WHERE run_seq = ?) WHERE seq = ?', runSeq, runSeq);
}
