/**
 * Worker-thread entry (built as out/main/engine-worker.js): an engine job runner, or, started
 * with the 'pixels' role, the pixel helper of a training job (pixel-thread.ts). Each role
 * loads only its own modules: the helper never loads tfjs.
 */
import { parentPort, workerData } from 'node:worker_threads';

if (!parentPort) throw new Error('engine-worker must run in a worker thread');
if ((workerData as { role?: string } | null)?.role === 'pixels') (await import('./pixel-worker')).servePixels(parentPort);
else (await import('./engine-jobs')).serveJobs(parentPort);
