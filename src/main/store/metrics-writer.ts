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
/** Rows per multi-row INSERT: one native call per 25 rows is ~20% faster than one per row. */
const GROUP = 25;
const INSERT_GROUP = `INSERT INTO metrics (run_seq, key, step, epoch, value, is_nan, time) VALUES ${Array(GROUP).fill('(?, ?, ?, ?, ?, ?, ?)').join(', ')}`;
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

/** What one batch changes for one key: its final/best and the last point of each epoch. */
interface KeyBatch {
  direction: MetricDirection;
  state: SummaryState | null;
  epochs: Map<number, EpochLast>;
}

/** Collects what one batch changes in the derived caches, then writes it. */
class DerivedBatch {
  private keys = new Map<string, KeyBatch>();

  constructor(
    private sql: Sql,
    private runSeq: number,
    private loadExisting: boolean,
  ) {}

  add(key: string, step: number, epoch: number, value: number, time: number): void {
    let k = this.keys.get(key);
    if (!k) {
      k = { direction: metricDirection(key), state: this.loadExisting ? this.readSummary(key) : null, epochs: new Map() };
      this.keys.set(key, k);
    }
    k.state = foldSummary(k.state, k.direction, step, epoch, value);
    const last = k.epochs.get(epoch);
    if (!last) k.epochs.set(epoch, { key, epoch, step, value, time });
    else if (step >= last.step) {
      last.step = step;
      last.value = value;
      last.time = time;
    }
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
    const put = this.sql.q(PUT_SUMMARY);
    for (const [key, k] of this.keys) {
      for (const e of k.epochs.values()) {
        const [v, nan] = encodeValue(e.value);
        upsertEpoch.run(this.runSeq, key, e.epoch, e.step, v, nan, Math.round(e.time));
      }
      const s = k.state;
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
    const insertGroup = sql.q(INSERT_GROUP);
    const derived = new DerivedBatch(sql, run.seq, true);
    const args: unknown[] = new Array(GROUP * 7);
    let filled = 0;
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i];
      const { key, step, epoch, value } = r;
      const time = r.time ?? now;
      if (typeof key !== 'string' || key.length === 0) throw badRow(i, r, 'has no key');
      if (!Number.isInteger(step) || step < 0) throw badRow(i, r, 'has a bad step');
      if (!Number.isInteger(epoch) || epoch < 0) throw badRow(i, r, 'has a bad epoch');
      if (typeof value !== 'number') throw badRow(i, r, 'has a value that is not a number');
      if (!Number.isFinite(time)) throw badRow(i, r, 'has a bad time');
      const nan = value !== value;
      const o = filled * 7;
      args[o] = run.seq;
      args[o + 1] = key;
      args[o + 2] = step;
      args[o + 3] = epoch;
      args[o + 4] = nan ? null : value;
      args[o + 5] = nan ? 1 : 0;
      args[o + 6] = Math.round(time);
      if (++filled === GROUP) {
        insertGroup.run(args);
        filled = 0;
      }
      derived.add(key, step, epoch, value, time);
      if (epoch > lastEpoch) lastEpoch = epoch;
    }
    const insert = sql.q(INSERT_METRIC);
    for (let j = 0; j < filled; j++) insert.run(args.slice(j * 7, j * 7 + 7));
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
