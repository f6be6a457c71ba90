/**
 * The schema, as an ordered list of migrations. `PRAGMA user_version` records how many have
 * run; each runs in its own transaction together with the version bump, so a crash leaves
 * the file at one version or the next, never between. Append new migrations; never edit one
 * that has shipped (MLflow's tracking store grew 140+ this way).
 */
import type Database from 'better-sqlite3';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

const STATUSES = `'queued','running','finished','failed','stopped','interrupted'`;

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'experiment log',
    sql: `
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

CREATE TABLE experiments (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL
);

CREATE TABLE dataset_snapshots (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  root TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  summary_json TEXT NOT NULL DEFAULT '{}'
);

-- snapshot_id is a soft reference: a run keeps its id even if the snapshot row is missing.
-- seq is the compact internal key the high-volume metric tables point at (an 8-byte integer
-- instead of the 18-character id in every metric row and index entry: a third smaller and
-- faster to insert); id is what users and the contract see.
CREATE TABLE runs (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  experiment_id TEXT NOT NULL REFERENCES experiments(id),
  status TEXT NOT NULL CHECK (status IN (${STATUSES})),
  config_json TEXT NOT NULL,
  snapshot_id TEXT,
  backbone TEXT NOT NULL,
  backend TEXT NOT NULL,
  seed INTEGER NOT NULL,
  strategy TEXT NOT NULL,
  app_version TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  ended_at INTEGER,
  heartbeat_at INTEGER,
  notes TEXT NOT NULL DEFAULT '',
  error TEXT,
  last_checkpoint TEXT,
  last_checkpoint_epoch INTEGER,
  -- Highest epoch with a metric, kept by the metric writer so lists need no aggregate.
  last_epoch INTEGER,
  -- Revision of this row for the in-memory list cache (set by the triggers below).
  rev INTEGER NOT NULL DEFAULT 0,
  owner_pid INTEGER,
  owner_boot TEXT,
  owner_started TEXT
);
CREATE INDEX runs_experiment_started ON runs(experiment_id, started_at);
CREATE INDEX runs_started ON runs(started_at);
CREATE INDEX runs_status ON runs(status);
CREATE INDEX runs_rev ON runs(rev);

-- A counter that only goes up. Every change a run list shows (the run row, its tags; metric
-- writes touch the row too) gives the run the next value, and deletes move it as well, so a
-- reader (run-cache.ts) re-reads just the runs whose rev passed the one it saw. Enforced here
-- so that no write path, in this process or another, can forget it.
CREATE TABLE revision (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
INSERT INTO revision (id, n) VALUES (1, 0);
CREATE TRIGGER runs_rev_insert AFTER INSERT ON runs BEGIN
  UPDATE revision SET n = n + 1 WHERE id = 1;
  UPDATE runs SET rev = (SELECT n FROM revision WHERE id = 1) WHERE seq = NEW.seq;
END;
-- The WHEN stops the trigger's own rev update from firing it again.
CREATE TRIGGER runs_rev_update AFTER UPDATE ON runs WHEN NEW.rev = OLD.rev BEGIN
  UPDATE revision SET n = n + 1 WHERE id = 1;
  UPDATE runs SET rev = (SELECT n FROM revision WHERE id = 1) WHERE seq = NEW.seq;
END;
CREATE TRIGGER runs_rev_delete AFTER DELETE ON runs BEGIN
  UPDATE revision SET n = n + 1 WHERE id = 1;
END;

CREATE TABLE params (
  run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (run_id, key)
) WITHOUT ROWID;

-- Append-only. SQLite stores NaN as NULL, so NaN is value NULL with is_nan = 1; ±Infinity
-- are ordinary REALs. The CHECK keeps the two columns honest.
CREATE TABLE metrics (
  id INTEGER PRIMARY KEY,
  run_seq INTEGER NOT NULL REFERENCES runs(seq) ON DELETE CASCADE,
  key TEXT NOT NULL,
  step INTEGER NOT NULL,
  epoch INTEGER NOT NULL,
  value REAL,
  is_nan INTEGER NOT NULL DEFAULT 0,
  time INTEGER NOT NULL,
  CHECK ((value IS NULL) = (is_nan = 1))
);
CREATE INDEX metrics_run_key_step ON metrics(run_seq, key, step);

-- Derived caches, maintained in the same transaction as the metric rows (rebuildable from
-- metrics): the last step of each epoch per key, and final/best per key.
CREATE TABLE epoch_metrics (
  run_seq INTEGER NOT NULL REFERENCES runs(seq) ON DELETE CASCADE,
  key TEXT NOT NULL,
  epoch INTEGER NOT NULL,
  step INTEGER NOT NULL,
  value REAL,
  is_nan INTEGER NOT NULL DEFAULT 0,
  time INTEGER NOT NULL,
  PRIMARY KEY (run_seq, key, epoch)
) WITHOUT ROWID;

CREATE TABLE metric_summary (
  run_seq INTEGER NOT NULL REFERENCES runs(seq) ON DELETE CASCADE,
  key TEXT NOT NULL,
  final_value REAL,
  final_is_nan INTEGER NOT NULL DEFAULT 0,
  final_step INTEGER NOT NULL,
  final_epoch INTEGER NOT NULL,
  best_value REAL,
  best_step INTEGER,
  best_epoch INTEGER,
  count INTEGER NOT NULL,
  PRIMARY KEY (run_seq, key)
) WITHOUT ROWID;
CREATE INDEX metric_summary_key ON metric_summary(key, best_value);

CREATE TABLE tags (
  run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  tag TEXT NOT NULL,
  PRIMARY KEY (run_id, tag)
) WITHOUT ROWID;
CREATE INDEX tags_tag ON tags(tag, run_id);
CREATE TRIGGER tags_rev_insert AFTER INSERT ON tags BEGIN
  UPDATE revision SET n = n + 1 WHERE id = 1;
  UPDATE runs SET rev = (SELECT n FROM revision WHERE id = 1) WHERE id = NEW.run_id;
END;
CREATE TRIGGER tags_rev_delete AFTER DELETE ON tags BEGIN
  UPDATE revision SET n = n + 1 WHERE id = 1;
  UPDATE runs SET rev = (SELECT n FROM revision WHERE id = 1) WHERE id = OLD.run_id;
END;

CREATE TABLE artifacts (
  id INTEGER PRIMARY KEY,
  run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  kind TEXT NOT NULL CHECK (kind IN ('checkpoint','export','plot','eval')),
  path TEXT NOT NULL,
  size INTEGER NOT NULL,
  meta_json TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL
);
CREATE INDEX artifacts_run ON artifacts(run_id);

-- One JSON document per run and split: evaluation reports, export parity checks.
CREATE TABLE evaluations (
  run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  split TEXT NOT NULL,
  json TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (run_id, split)
) WITHOUT ROWID;
`,
  },
];

/** The schema version this build writes and understands. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

/** Run every migration above the file's `user_version`, each in its own transaction. */
export function migrate(db: Database.Database, from: number): number {
  let applied = 0;
  for (const m of MIGRATIONS) {
    if (m.version <= from) continue;
    db.transaction(() => {
      // Another process may have run it while we waited for the write lock.
      if ((db.pragma('user_version', { simple: true }) as number) >= m.version) return;
      db.exec(m.sql);
      // PRAGMA cannot take a bound parameter; version is a trusted integer from this file.
      db.pragma(`user_version = ${m.version}`);
    }).immediate();
    applied++;
  }
  return applied;
}
