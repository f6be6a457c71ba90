/**
 * Run summaries (record + tags + final/best of every metric) as lists need them. Building
 * 10,000 of them from SQLite takes well over 50 ms, and the app lists every run again each
 * time one changes, so a long-lived process keeps them in memory: the schema's triggers
 * give every changed run the next value of a global revision counter, and `sync` re-reads
 * only the runs past the revision it last saw (written by this process or any other).
 * Cached summaries are frozen: they are shared by every caller.
 */
import type { RunSummary } from '../../shared/contract/runs';
import type { Sql } from './sql';
import { experimentNames, RECORD_COLUMNS, SUMMARY_COLUMNS, toMetricSummary, toRunRecord, type RecordRaw, type SummaryRaw } from './records';

/** Build summaries for run rows in three queries (tags and metrics by JSON arrays of keys). */
export function buildSummaries(sql: Sql, rows: RecordRaw[]): Map<number, RunSummary> {
  const bySeq = new Map<number, RunSummary>();
  const byId = new Map<string, RunSummary>();
  const experiments = experimentNames(sql);
  for (const r of rows) {
    const rec = toRunRecord(r, experiments) as RunSummary;
    rec.tags = [];
    rec.lastEpoch = r[1];
    rec.metrics = {};
    bySeq.set(r[0], rec);
    byId.set(rec.id, rec);
  }
  if (!rows.length) return bySeq;
  const all = rows.length > 2000; // a plain scan beats thousands of index lookups
  const tags = all
    ? sql.rawAll<[string, string]>('SELECT run_id, tag FROM tags ORDER BY tag')
    : sql.rawAll<[string, string]>('SELECT run_id, tag FROM tags WHERE run_id IN (SELECT value FROM json_each(?)) ORDER BY tag', JSON.stringify([...byId.keys()]));
  for (const [runId, tag] of tags) byId.get(runId)?.tags.push(tag);
  const summaries = all
    ? sql.rawAll<SummaryRaw>(`SELECT ${SUMMARY_COLUMNS} FROM metric_summary`)
    : sql.rawAll<SummaryRaw>(`SELECT ${SUMMARY_COLUMNS} FROM metric_summary WHERE run_seq IN (SELECT value FROM json_each(?))`, JSON.stringify([...bySeq.keys()]));
  for (const m of summaries) {
    const rec = bySeq.get(m[0]);
    if (rec) rec.metrics[m[1]] = toMetricSummary(m);
  }
  return bySeq;
}

function freeze(s: RunSummary): RunSummary {
  Object.freeze(s.tags);
  for (const m of Object.values(s.metrics)) Object.freeze(m);
  Object.freeze(s.metrics);
  return Object.freeze(s);
}

export class RunSummaryCache {
  private bySeq = new Map<number, RunSummary>();
  private seqById = new Map<string, number>();
  private revision = -1;

  /** True once a full list has been built; before that, small reads go straight to SQL. */
  get warm(): boolean {
    return this.revision >= 0;
  }

  /** Bring the cache up to date with the file. Call inside a read transaction. */
  sync(sql: Sql): void {
    const head = sql.get<{ n: number }>('SELECT n FROM revision WHERE id = 1')!.n;
    if (head === this.revision) return;
    const rows = sql.rawAll<RecordRaw>(`SELECT ${RECORD_COLUMNS} FROM runs r WHERE r.rev > ?`, this.revision);
    for (const [seq, s] of buildSummaries(sql, rows)) {
      this.bySeq.set(seq, freeze(s));
      this.seqById.set(s.id, seq);
    }
    this.revision = head;
    const count = sql.get<{ n: number }>('SELECT count(*) AS n FROM runs')!.n;
    if (count !== this.bySeq.size) {
      // Runs were deleted: drop what is no longer in the file.
      const live = new Set(sql.pluckAll<number>('SELECT seq FROM runs'));
      for (const [seq, s] of this.bySeq) {
        if (live.has(seq)) continue;
        this.bySeq.delete(seq);
        this.seqById.delete(s.id);
      }
    }
  }

  bySeqs(seqs: number[]): RunSummary[] {
    return seqs.map((s) => this.bySeq.get(s)).filter((s): s is RunSummary => !!s);
  }

  byIds(ids: string[]): RunSummary[] {
    return this.bySeqs(ids.map((id) => this.seqById.get(id) ?? -1));
  }
}

/**
 * Summaries for these runs, in this order: from the cache when it is warm or when the list
 * is long (building it costs about what reading that many runs directly does), else direct.
 */
export function summariesBySeq(sql: Sql, cache: RunSummaryCache, seqs: number[]): RunSummary[] {
  if (cache.warm || seqs.length >= 1000) {
    cache.sync(sql);
    return cache.bySeqs(seqs);
  }
  const rows = sql.rawAll<RecordRaw>(`SELECT ${RECORD_COLUMNS} FROM runs r WHERE r.seq IN (SELECT value FROM json_each(?))`, JSON.stringify(seqs));
  const built = buildSummaries(sql, rows);
  return seqs.map((s) => built.get(s)).filter((s): s is RunSummary => !!s);
}
