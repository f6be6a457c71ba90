/**
 * The one error type services throw. It crosses every boundary as `{ code, message }`,
 * so the message must say what was received and what to do about it.
 */
export class AppError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'AppError';
  }
}

/** Thrown by long operations when the user cancels them; never a failure. */
export class CancelledError extends AppError {
  constructor(what = 'operation') {
    super('cancelled', `The ${what} was cancelled.`);
    this.name = 'CancelledError';
  }
}

/** Convert anything thrown into the wire shape. Unknown errors keep their message. */
export function toApiError(err: unknown): { code: string; message: string } {
  if (err instanceof AppError) return { code: err.code, message: err.message };
  if (err instanceof Error) return { code: 'internal', message: err.message || String(err) };
  return { code: 'internal', message: String(err) };
}
