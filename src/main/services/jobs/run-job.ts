/** Dispatch a job to its implementation, after picking the tfjs backend once per worker. */
import { AppError } from '../../../shared/errors';
import { initBackend } from '../../engine/backend';
import type { JobIO, JobKind } from './protocol';
import { trace } from '../trace';

export async function runJob(kind: JobKind, payload: unknown, io: JobIO): Promise<unknown> {
  const backend = await initBackend();
  trace(`backend ${backend.name} (${backend.threads} threads)`);
  io.emit('backend', { name: backend.name, threads: backend.threads });
  switch (kind) {
    case 'train':
      return (await import('./train-job')).trainJob(payload as never, io, backend);
    case 'evaluate':
      return (await import('./classifier-jobs')).evaluateJob(payload as never, io);
    case 'export':
      return (await import('./classifier-jobs')).exportJob(payload as never, io);
    case 'predict':
      return (await import('./classifier-jobs')).predictJob(payload as never, io);
    case 'lrFind':
      return (await import('./train-job')).lrFindJob(payload as never, io);
    default:
      throw new AppError('internal', `Unknown engine job "${kind as string}".`);
  }
}
