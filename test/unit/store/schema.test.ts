import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { openStore, SCHEMA_VERSION } from '../../../src/main/store';
import { MIGRATIONS } from '../../../src/main/store/migrations';
import { AppError } from '../../../src/shared/errors';
import { freshStore, tempDir } from './helpers';

const sha = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

test('migrations are ordered from 1 and set user_version; WAL and foreign keys are on', () => {
  MIGRATIONS.forEach((m, i) => assert.equal(m.version, i + 1));
  const { store, file } = freshStore();
  assert.equal(store.schemaVersion(), SCHEMA_VERSION);
  assert.equal(store.integrityCheck(), 'ok');
  store.close();
  const db = new Database(file);
  assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all().map((r: any) => r.name);
  for (const t of ['artifacts', 'dataset_snapshots', 'evaluations', 'experiments', 'metrics', 'params', 'runs', 'tags']) assert.ok(tables.includes(t), t);
  const idx = db.prepare("SELECT sql FROM sqlite_master WHERE name = 'metrics_run_key_step'").get() as { sql: string };
  assert.match(idx.sql, /\(run_seq, key, step\)/);
  db.close();
  // Reopening does not re-run migrations (CREATE TABLE would throw).
  const again = openStore(file, { appVersion: '0.1.0-test' });
  assert.equal(again.schemaVersion(), SCHEMA_VERSION);
  again.close();
});

test('a log written by a newer version is refused and left byte-for-byte untouched', () => {
  const { store, file } = freshStore();
  store.createRun({ config: {}, snapshotId: null, backbone: 'b', backend: 'wasm', seed: 1, strategy: 'head' });
  store.close();
  const db = new Database(file);
  db.pragma(`user_version = ${SCHEMA_VERSION + 5}`);
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  const before = sha(file);
  const files = fs.readdirSync(path.dirname(file)).sort();
  assert.throws(
    () => openStore(file, { appVersion: '0.1.0-test' }),
    (err: AppError) => {
      assert.equal(err.code, 'db_too_new');
      assert.match(err.message, new RegExp(`schema version ${SCHEMA_VERSION + 5}`));
      assert.match(err.message, /0\.1\.0-test/);
      assert.match(err.message, /Update Finetune Studio/);
      return true;
    },
  );
  assert.equal(sha(file), before);
  assert.deepEqual(fs.readdirSync(path.dirname(file)).sort(), files);
});

test('a file that is not a database gives db_corrupt naming the file and how to move it aside', () => {
  const dir = tempDir();
  const file = path.join(dir, 'finetune.sqlite');
  fs.writeFileSync(file, 'this is not sqlite, just some text that someone saved here\n'.repeat(100));
  const before = sha(file);
  assert.throws(
    () => openStore(file, { appVersion: '0.1.0-test' }),
    (err: AppError) => {
      assert.equal(err.code, 'db_corrupt');
      assert.ok(err.message.includes(file));
      assert.match(err.message, /file is not a database/);
      assert.match(err.message, /Move it aside/);
      return true;
    },
  );
  assert.equal(sha(file), before);
});

test('a damaged page gives db_corrupt, not a raw SqliteError', () => {
  const { store, file } = freshStore();
  const run = store.createRun({ config: { a: 1 }, snapshotId: null, backbone: 'b', backend: 'wasm', seed: 1, strategy: 'head' });
  const rows = Array.from({ length: 5000 }, (_, i) => ({ key: 'loss', step: i, epoch: 0, value: i }));
  store.logMetrics(run.id, rows);
  store.close();
  const db = new Database(file);
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.pragma('journal_mode = DELETE');
  db.close();
  // Scribble over every page after the first (the header page stays valid).
  const buf = fs.readFileSync(file);
  const pageSize = buf.readUInt16BE(16) === 1 ? 65536 : buf.readUInt16BE(16);
  for (let p = pageSize; p < buf.length; p += pageSize) buf.fill(0xa5, p, p + 64);
  fs.writeFileSync(file, buf);
  assert.throws(
    () => {
      const s = openStore(file, { appVersion: '0.1.0-test' });
      try {
        s.getMetrics(run.id);
        s.listRuns();
      } finally {
        s.close();
      }
    },
    (err: AppError) => err instanceof AppError && err.code === 'db_corrupt' && err.message.includes(file),
  );
});

test('a log locked by another writer gives db_locked after the busy timeout', () => {
  const { store, file } = freshStore();
  const run = store.createRun({ config: {}, snapshotId: null, backbone: 'b', backend: 'wasm', seed: 1, strategy: 'head' });
  store.close();
  const other = new Database(file);
  other.exec('BEGIN IMMEDIATE');
  // An up-to-date log opens without writing, so reading works while another process writes.
  const reader = openStore(file, { appVersion: '0.1.0-test', busyTimeoutMs: 1 });
  assert.equal(reader.listRuns().length, 1);
  reader.close();
  // A log that needs a stamp (another app version) must wait for the lock, and says so.
  assert.throws(
    () => openStore(file, { appVersion: '0.2.0-test', busyTimeoutMs: 1 }),
    (err: AppError) => {
      assert.equal(err.code, 'db_locked');
      assert.match(err.message, /locked by another process/);
      assert.ok(err.message.includes(file));
      return true;
    },
  );
  other.exec('COMMIT');
  // Locked after opening: a write fails cleanly, reads keep working (WAL).
  const s = openStore(file, { appVersion: '0.1.0-test', busyTimeoutMs: 1 });
  other.exec('BEGIN IMMEDIATE');
  assert.throws(() => s.logMetrics(run.id, [{ key: 'loss', step: 0, epoch: 0, value: 1 }]), (e: AppError) => e.code === 'db_locked');
  assert.equal(s.listRuns().length, 1);
  other.exec('COMMIT');
  s.logMetrics(run.id, [{ key: 'loss', step: 0, epoch: 0, value: 1 }]);
  assert.equal(s.getMetrics(run.id).series.loss.length, 1);
  s.close();
  other.close();
});
