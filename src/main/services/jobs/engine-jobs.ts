/**
 * The engine worker's job loop: runs one job, reports events and one result.
 * Pause/resume/stop arrive as messages and are honoured at batch boundaries.
 */
import type { MessagePort } from 'node:worker_threads';
import { toApiError } from '../../../shared/errors';
import { TrainController } from '../../engine/controller';
import type { ControlMessage, JobIO, JobStart, WarmMessage, WorkerMessage } from './protocol';
import { runJob } from './run-job';
import { initBackend } from '../../engine/backend';
import { trace } from '../trace';

export function serveJobs(port: MessagePort): void {
  trace('engine worker loaded');
  const abort = new AbortController();
  const controller = new TrainController();
  const send = (m: WorkerMessage) => port.postMessage(m);
  const io: JobIO = {
    emit: (name, data) => send({ type: 'event', name, data }),
    signal: abort.signal,
    controller,
  };
  port.on('message', async (m: JobStart | ControlMessage | WarmMessage) => {
    if (m.type === 'warm') {
      // Failures are left for the job itself to meet and report.
      await Promise.all([initBackend(), import('./train-job')]).then(
        () => trace('engine worker warm'),
        () => {},
      );
    } else if (m.type === 'pause') controller.pause();
    else if (m.type === 'resume') controller.resume();
    else if (m.type === 'stop') {
      controller.stop();
      abort.abort();
    } else if (m.type === 'start') {
      try {
        const value = await runJob(m.kind, m.payload, io);
        send({ type: 'result', value });
      } catch (err) {
        const e = toApiError(err);
        send({ type: 'error', code: e.code, message: e.message, stack: (err as Error)?.stack });
      }
    }
  });
}
