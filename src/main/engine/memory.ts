/**
 * Bounded memory (issue 9 item 5). wasm's heap is 32-bit, and the gradient tape keeps every
 * activation of the trainable part, so a large batch through a big trainable backbone must
 * be split into micro-batches whose gradients accumulate. The size is estimated from the
 * activation shapes of the groups that will ever train; an out-of-memory error that still
 * happens becomes an AppError saying what to change.
 */
import { AppError } from '../../shared/errors';
import type { BackboneNet } from './net/types';

/**
 * Bytes the tape keeps per image per byte of a group's input activation: inverted residual
 * blocks expand 6x and keep conv, BN and activation outputs (and their gradients) alive.
 * Conservative on purpose: bench/full-finetune-memory.ts measures the heap after one
 * micro-batch at ~0.55x this estimate for MobileNetV2 0.35 and ~0.75x for 1.0 (the margin
 * shrinks for wider nets, as the input image is a fixed part of the boundaries' sum).
 */
const TAPE_FACTOR = 48;
/** Activation budget for one micro-batch; leaves room below wasm's heap for weights, data and the frozen path. */
export const DEFAULT_TAPE_BUDGET = 768 * 1024 * 1024;

/** Estimated tape bytes per image when groups [from, G) are trainable. */
export function tapeBytesPerImage(net: BackboneNet, from: number): number {
  let floats = 0;
  for (let i = from; i <= net.groups.length; i++) floats += net.boundaryShape(i).reduce((a, b) => a * b, 1);
  return floats * 4 * TAPE_FACTOR;
}

/**
 * The micro-batch: `requested` when > 0, else the largest size whose estimated tape fits
 * the budget (at least 1, at most the batch), split evenly so micro-batches are equal.
 */
export function chooseMicroBatch(net: BackboneNet, earliestTrainable: number, batchSize: number, requested = 0, budget = DEFAULT_TAPE_BUDGET): number {
  if (requested > 0) return Math.min(requested, batchSize);
  const fit = Math.max(1, Math.floor(budget / Math.max(1, tapeBytesPerImage(net, earliestTrainable))));
  if (fit >= batchSize) return batchSize;
  const parts = Math.ceil(batchSize / fit);
  return Math.ceil(batchSize / parts);
}

const OOM_PATTERNS = [/memory access out of bounds/i, /out of memory/i, /cannot enlarge memory/i, /array buffer allocation failed/i, /allocation failed/i, /invalid typed array length/i, /Aborted\(OOM\)/i];

export function isOutOfMemory(err: unknown): boolean {
  const msg = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return OOM_PATTERNS.some((re) => re.test(msg));
}

/** The error the user sees: what ran out, with which settings, and what to change. */
export function outOfMemoryError(err: unknown, o: { backend: string; batchSize: number; microBatch: number; trainableGroups: number; netId: string }): AppError {
  const first = (err instanceof Error ? err.message : String(err)).split('\n')[0];
  const half = Math.max(1, Math.floor(o.microBatch / 2));
  const advice =
    o.microBatch > 1
      ? `Set "microBatch" to ${half} in the training config (gradients accumulate, the effective batch stays ${o.batchSize}), or freeze more groups`
      : 'Freeze more groups (strategy "progressive" or "head"), or pick a smaller backbone';
  return new AppError(
    'out-of-memory',
    `Training ran out of memory on the ${o.backend} backend (${first}) with batch ${o.batchSize}, micro-batch ${o.microBatch}, ${o.trainableGroups} trainable groups of ${o.netId}. ${advice}. Resume from the last checkpoint afterwards.`,
  );
}
