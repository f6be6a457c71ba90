/**
 * Class weights and a class-balanced sampler for imbalanced sets. Weights follow sklearn's
 * "balanced" rule n / (classes x count); the sampler draws each epoch's order so every
 * class is seen about equally often (with replacement for small classes), seeded by epoch.
 */
import { derivedRng } from '../engine/rng';

export function balancedClassWeights(labels: Int32Array, numClasses: number): Float32Array {
  const counts = new Array<number>(numClasses).fill(0);
  for (const l of labels) counts[l]++;
  return Float32Array.from(counts.map((c) => (c ? labels.length / (numClasses * c) : 0)));
}

/** An epoch's example order of the same length as the data, balanced across classes. */
export function balancedOrder(labels: Int32Array, numClasses: number, seed: number, epoch: number): number[] {
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  labels.forEach((l, i) => byClass[l].push(i));
  const present = byClass.filter((c) => c.length);
  const rng = derivedRng(seed, 'balanced-sampler', epoch);
  const out: number[] = [];
  for (let k = 0; k < labels.length; k++) {
    const cls = present[rng.int(present.length)];
    out.push(cls[rng.int(cls.length)]);
  }
  return out;
}
