/**
 * SQLite failures turned into AppErrors that say which file and what to do. Every public
 * Store method runs through `translateDbError`, so callers never see a raw SqliteError.
 */
import { AppError } from '../../shared/errors';

interface SqliteLike {
  code?: string;
  message?: string;
}

function sqliteCode(err: unknown): string | null {
  const code = (err as SqliteLike | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : null;
}

/** A corrupt or foreign file: the user should move it aside, the app will start a new log. */
export function corruptError(file: string, detail: string): AppError {
  return new AppError(
    'db_corrupt',
    `The experiment log ${file} is not a readable SQLite database (${detail}). ` +
      `Nothing was changed. Move it aside (for example rename it to ${file}.broken) and start again: ` +
      `a new empty log will be created. Keep the old file if you want to try recovering runs from it ` +
      `(sqlite3 "${file}" ".recover").`,
  );
}

export function lockedError(file: string, timeoutMs: number): AppError {
  return new AppError(
    'db_locked',
    `The experiment log ${file} is locked by another process (still busy after ${timeoutMs} ms). ` +
      `Another Finetune Studio window or \`finetune\` command is probably writing to it: wait for it to ` +
      `finish or close it, then retry. If none is running, a crashed process may hold the lock: ` +
      `restart the computer or move the file's -wal and -shm companions aside only after a backup.`,
  );
}

/** Map a better-sqlite3 error to an AppError; anything else is returned unchanged. */
export function translateDbError(err: unknown, file: string, busyTimeoutMs: number): unknown {
  if (err instanceof AppError) return err;
  const code = sqliteCode(err);
  if (!code) return err;
  const message = (err as SqliteLike).message ?? code;
  if (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT')) return corruptError(file, message);
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return lockedError(file, busyTimeoutMs);
  if (code.startsWith('SQLITE_READONLY')) {
    return new AppError(
      'db_readonly',
      `The experiment log ${file} cannot be written (${message}). Check the file and its folder are writable ` +
        `by you, or choose another home folder with --home / FINETUNE_HOME.`,
    );
  }
  if (code === 'SQLITE_FULL') {
    return new AppError('disk_full', `The disk holding ${file} is full. Free some space, then retry.`);
  }
  if (code.startsWith('SQLITE_CANTOPEN')) {
    return new AppError(
      'db_cantopen',
      `Cannot open the experiment log ${file} (${message}). Check that its folder exists and is writable.`,
    );
  }
  return new AppError('db_error', `The experiment log ${file} failed: ${message} (${code}).`);
}
