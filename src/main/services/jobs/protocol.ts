/**
 * Messages between the main thread and an engine worker. The engine (tfjs, sharp) runs in
 * a worker thread so the UI's process stays responsive; only small JSON crosses.
 */
import type { TrainController } from '../../engine/controller';

export type JobKind = 'train' | 'evaluate' | 'export' | 'predict' | 'lrFind';

export interface JobStart<P = unknown> {
  type: 'start';
  kind: JobKind;
  payload: P;
}

export type ControlMessage = { type: 'pause' } | { type: 'resume' } | { type: 'stop' };

/** To a worker started ahead of its job: load the job modules and start tfjs now. */
export interface WarmMessage {
  type: 'warm';
}

/** From the worker: events while running, then exactly one `result` or `error`. */
export type WorkerMessage =
  | { type: 'event'; name: string; data: unknown }
  | { type: 'result'; value: unknown }
  | { type: 'error'; code: string; message: string; stack?: string };

/** What a job implementation gets: a way to report, and the control state. */
export interface JobIO {
  emit(name: string, data: unknown): void;
  /** Aborted by stop, for jobs without batch boundaries (evaluation, export). */
  readonly signal: AbortSignal;
  /** Pause / resume / stop at batch boundaries, for training. */
  readonly controller: TrainController;
}
