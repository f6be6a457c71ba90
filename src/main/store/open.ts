/**
 * Opening the log safely: a file written by a newer version is refused before anything is
 * written to it; a foreign or corrupt file and a locked file give errors that say what to do.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { AppError } from '../../shared/errors';
import { translateDbError } from './db-errors';
import { migrate, SCHEMA_VERSION } from './migrations';

export interface OpenOptions {
  /** Stamped on runs and in the log's meta table. */
  appVersion: string;
  /** How long a write waits for another process's lock before failing (ms). */
  busyTimeoutMs?: number;
}

function tooNewError(file: string, version: number, writer: string | null, appVersion: string): AppError {
  return new AppError(
    'db_too_new',
    `The experiment log ${file} was written by a newer Finetune Studio${writer ? ` (${writer})` : ''}: ` +
      `schema version ${version}, and this version (${appVersion}) understands up to ${SCHEMA_VERSION}. ` +
      `It was not modified. Update Finetune Studio, or use another home folder (--home DIR or FINETUNE_HOME).`,
  );
}

/** Read the schema version (and last writer) without writing anything; throws for a too-new file. */
function probeExisting(file: string, opts: Required<OpenOptions>): void {
  let db: Database.Database | null = null;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true, timeout: opts.busyTimeoutMs });
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      let writer: string | null = null;
      try {
        writer = (db.prepare("SELECT value FROM meta WHERE key = 'last_app_version'").get() as { value: string } | undefined)?.value ?? null;
      } catch {
        // A future schema may not have this table; the version number is enough.
      }
      throw tooNewError(file, version, writer, opts.appVersion);
    }
  } catch (err) {
    throw translateDbError(err, file, opts.busyTimeoutMs);
  } finally {
    db?.close();
  }
}

/**
 * Open (creating if needed) the SQLite file at `file`, migrate it to the current schema and
 * return the connection with WAL, foreign keys and a busy timeout set.
 */
export function openDatabase(file: string, options: OpenOptions): Database.Database {
  const opts = { busyTimeoutMs: 5000, ...options };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const exists = fs.existsSync(file) && fs.statSync(file).size > 0;
  if (exists) probeExisting(file, opts);
  let db: Database.Database | null = null;
  try {
    db = new Database(file, { timeout: opts.busyTimeoutMs });
    // Check again on the real connection: another process may have upgraded it meanwhile.
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) throw tooNewError(file, version, null, opts.appVersion);
    db.pragma('journal_mode = WAL');
    // In WAL mode NORMAL survives any process crash (SIGKILL); only an OS crash or power cut
    // can lose the last commits, never corrupt the file.
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    migrate(db, version);
    const now = String(Date.now());
    db.transaction(() => {
      const put = db!.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value');
      db!.prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)').run('created_by', opts.appVersion);
      db!.prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)').run('created_at', now);
      put.run('last_app_version', opts.appVersion);
    }).immediate();
    return db;
  } catch (err) {
    db?.close();
    throw translateDbError(err, file, opts.busyTimeoutMs);
  }
}
