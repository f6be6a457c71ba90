/**
 * Start an engine job in a worker thread and talk to it. Finds the worker entry both in
 * the sources (tests, `tsx`) and in the electron-vite build (out/main/engine-worker.js).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { AppError } from '../../../shared/errors';
import type { ControlMessage, JobKind, WarmMessage, WorkerMessage } from './protocol';

export interface JobHandle<R> {
  /** Settles with the job's result, or rejects with an AppError carrying the worker's code. */
  done: Promise<R>;
  control(msg: ControlMessage): void;
  /** Hard stop (the job loses its current batch; checkpoints already written stay). */
  terminate(): Promise<void>;
  readonly threadId: number;
}

/** Locate the worker entry next to this module, built or not. */
export function workerEntry(): URL {
  const here = fileURLToPath(import.meta.url);
  const candidates = [
    path.join(path.dirname(here), 'engine-worker.ts'),
    // built: this module may live in out/main/ or out/main/chunks/
    path.join(path.dirname(here), 'engine-worker.js'),
    path.join(path.dirname(here), '..', 'engine-worker.js'),
  ];
  for (const c of candidates) if (fs.existsSync(c)) return pathToFileURL(c);
  throw new AppError('internal', `The engine worker is missing (looked for ${candidates.join(', ')}). Rebuild with \`npm run build\`.`);
}

/**
 * A worker running `entry`. TypeScript sources (development, tests) go through a tiny
 * bootstrap that registers tsx inside the worker, since loader flags of the parent do not
 * reliably reach worker threads.
 */
export function spawnWorker(entry: URL, workerData?: unknown): Worker {
  const options = { resourceLimits: { maxOldGenerationSizeMb: 8192 }, workerData };
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, options);
  const bootstrap = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); }).catch((e) => { throw e; });`;
  return new Worker(bootstrap, { ...options, eval: true });
}

/** A worker started ahead of its job (prestartWorker), until a job takes it. */
let spare: Worker | null = null;

/**
 * Start an engine worker now, so that its modules and tfjs load (~1 s) while the caller
 * still prepares the job (the CLI's import of the dataset); the next startJob takes it.
 * It does not keep the process alive while it waits.
 */
export function prestartWorker(): void {
  if (spare) return;
  const w = spawnWorker(workerEntry());
  w.unref();
  const gone = () => {
    if (spare === w) spare = null;
  };
  // A spare that fails is simply not used (the job's own worker reports the error).
  w.on('error', gone);
  w.on('exit', gone);
  w.postMessage({ type: 'warm' } satisfies WarmMessage);
  spare = w;
}

/** Stop a spare worker nobody took (shutdown). */
export async function dropSpareWorker(): Promise<void> {
  const w = spare;
  spare = null;
  await w?.terminate();
}

/** Thread id of the waiting spare, if any (tests). */
export function spareThreadId(): number | null {
  return spare?.threadId ?? null;
}

function takeSpare(): Worker | null {
  const w = spare;
  spare = null;
  w?.ref();
  return w;
}

export function startJob<R>(kind: JobKind, payload: unknown, onEvent: (name: string, data: unknown) => void): JobHandle<R> {
  const worker = takeSpare() ?? spawnWorker(workerEntry());
  let settled = false;
  const done = new Promise<R>((resolve, reject) => {
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'event') onEvent(m.name, m.data);
      else if (m.type === 'result') {
        settled = true;
        resolve(m.value as R);
        void worker.terminate();
      } else if (m.type === 'error') {
        settled = true;
        reject(new AppError(m.code, m.message));
        void worker.terminate();
      }
    });
    worker.on('error', (err) => {
      if (!settled) {
        settled = true;
        reject(new AppError('engine_crashed', `The engine stopped unexpectedly: ${err.message}`));
      }
    });
    worker.on('exit', (code) => {
      if (!settled) {
        settled = true;
        reject(new AppError('engine_crashed', `The engine worker exited (code ${code}) before finishing.`));
      }
    });
  });
  worker.postMessage({ type: 'start', kind, payload });
  return {
    done,
    control: (msg) => worker.postMessage(msg),
    terminate: async () => {
      await worker.terminate();
    },
    threadId: worker.threadId,
  };
}
