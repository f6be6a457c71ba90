/**
 * A helper thread that makes batches of pixels (decode-cache reads, augmentation, scaling)
 * for the engine worker, so they overlap the engine's wasm compute instead of waiting on it:
 * XNNPACK's two threads keep about 1.45 of the 2 cores busy, and the helper takes the rest.
 * It runs dataset/split-pixels.ts, the same code the engine's thread would run, so batches
 * are identical. The helper is the engine worker's entry started with the 'pixels' role.
 */
import { Worker } from 'node:worker_threads';
import { AppError } from '../../../shared/errors';
import type { PixelThread, RemotePixels } from '../../dataset/image-source';
import type { PixelRequest, SplitPixelsSpec } from '../../dataset/split-pixels';
import { spawnWorker, workerEntry } from './worker-host';

/** Main thread -> helper. */
export type PixelMessage =
  | { type: 'open'; source: number; spec: SplitPixelsSpec }
  | { type: 'load'; id: number; source: number; indices: number[]; epoch: number; augment: boolean; table?: Float32Array };

/** Helper -> main thread. */
export type PixelReply = { type: 'loaded'; id: number; data: Uint8Array | Float32Array } | { type: 'failed'; id: number; code: string; message: string };

export const PIXELS_ROLE = 'pixels';

export interface PixelThreadHandle extends PixelThread {
  /** Stop the helper; requests still pending reject. */
  dispose(): Promise<void>;
}

/** Start the helper thread. */
export function startPixelThread(): PixelThreadHandle {
  const worker: Worker = spawnWorker(workerEntry(), { role: PIXELS_ROLE });
  // The engine worker may finish without disposing (a crash): never keep it alive for the helper.
  worker.unref();
  const pending = new Map<number, { resolve: (d: Uint8Array | Float32Array) => void; reject: (e: Error) => void }>();
  let nextId = 0;
  let nextSource = 0;
  let dead: Error | null = null;
  const failAll = (err: Error) => {
    dead ??= err;
    for (const p of pending.values()) p.reject(dead);
    pending.clear();
  };
  worker.on('message', (m: PixelReply) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.type === 'loaded') p.resolve(m.data);
    else p.reject(new AppError(m.code, m.message));
  });
  worker.on('error', (err) => failAll(new AppError('engine_crashed', `The pixel thread stopped unexpectedly: ${err.message}`)));
  worker.on('exit', (code) => failAll(new AppError('engine_crashed', `The pixel thread exited (code ${code}).`)));

  function request<T extends Uint8Array | Float32Array>(source: number, indices: number[], opts: PixelRequest, table?: Float32Array): Promise<T> {
    if (dead) return Promise.reject(dead);
    const id = nextId++;
    return new Promise<T>((resolve, reject) => {
      pending.set(id, { resolve: resolve as (d: Uint8Array | Float32Array) => void, reject });
      const msg: PixelMessage = { type: 'load', id, source, indices, epoch: opts.epoch, augment: opts.augment, table };
      worker.postMessage(msg);
    });
  }

  return {
    open(spec): RemotePixels {
      const source = nextSource++;
      worker.postMessage({ type: 'open', source, spec } satisfies PixelMessage);
      return {
        load: (indices, opts) => request<Uint8Array>(source, indices, opts),
        loadScaled: (indices, opts, table) => request<Float32Array>(source, indices, opts, table),
      };
    },
    async dispose() {
      failAll(new AppError('cancelled', 'The pixel thread was stopped.'));
      await worker.terminate();
    },
  };
}
