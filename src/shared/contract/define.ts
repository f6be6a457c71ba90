/**
 * Building blocks of the typed contract. A domain file declares its verbs as
 * `verb(argsSchema).returns<Result>()`; the index merges the domains into one map.
 * The zod schema validates arguments at every edge (IPC, HTTP, CLI); the phantom
 * result type types the answer. Renaming a verb breaks every caller at compile time.
 */
import type { z } from 'zod';

export interface VerbSpec<A extends z.ZodType, R> {
  args: A;
  /** Never set at run time: carries the result type only. */
  readonly __result?: R;
}

export function verb<A extends z.ZodType>(args: A) {
  return {
    returns<R>(): VerbSpec<A, R> {
      return { args };
    },
  };
}

/** Errors that cross the boundary. `code` is stable, `message` says what was wrong and what to do. */
export interface ApiError {
  code: string;
  message: string;
}

export type Result<T> = { ok: true; value: T } | { ok: false; error: ApiError };
