/**
 * Worker-thread entry for engine jobs: runs one job, reports events and one result.
 * Pause/resume/stop arrive as messages and are honoured at batch boundaries.
 */
import { parentPort } from 'node:worker_threads';
import { toApiError } from '../../../shared/errors';
import { TrainController } from '../../engine/controller';
import type { ControlMessage, JobIO, JobStart, WorkerMessage } from './protocol';
import { runJob } from './run-job';

if (!parentPort) throw new Error('engine-worker must run in a worker thread');
const port = parentPort;
const abort = new AbortController();
const controller = new TrainController();

function send(m: WorkerMessage): void {
  port.postMessage(m);
}

const io: JobIO = {
  emit: (name, data) => send({ type: 'event', name, data }),
  signal: abort.signal,
  controller,
};

port.on('message', async (m: JobStart | ControlMessage) => {
  if (m.type === 'pause') controller.pause();
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
