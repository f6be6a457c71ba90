import { test } from 'node:test';
import assert from 'node:assert/strict';
import { balancedClassWeights, balancedOrder } from '../../../src/main/dataset/sampler';

const close = (a: Float32Array, b: number[]) => assert.ok(a.length === b.length && b.every((v, i) => Math.abs(a[i] - v) < 1e-6), `${Array.from(a)} vs ${b}`);
const labelsOf = (counts: number[]) => Int32Array.from(counts.flatMap((n, c) => Array<number>(n).fill(c)));

test('balancedClassWeights follows n / (classes x count)', () => {
  const w = balancedClassWeights(labelsOf([80, 20]), 2);
  close(w, [100 / (2 * 80), 100 / (2 * 20)]);
  close(balancedClassWeights(labelsOf([5, 5, 5]), 3), [1, 1, 1]);
  // A class with no examples gets weight 0 rather than Infinity.
  const gap = balancedClassWeights(labelsOf([6, 0, 2]), 3);
  close(gap, [8 / 6, 0, 8 / 2].map((v) => v / 3));
  // Weighted counts are equal across present classes.
  const counts = [300, 60, 7];
  const ws = balancedClassWeights(labelsOf(counts), 3);
  for (let c = 0; c < 3; c++) assert.ok(Math.abs(ws[c] * counts[c] - 367 / 3) < 1e-3);
});

test('balancedOrder draws each class about equally, is seeded by epoch and covers the small class', () => {
  const counts = [900, 90, 10];
  const labels = labelsOf(counts);
  const order = balancedOrder(labels, 3, 4, 0);
  assert.equal(order.length, labels.length);
  assert.ok(order.every((i) => Number.isInteger(i) && i >= 0 && i < labels.length));
  const drawn = [0, 0, 0];
  for (const i of order) drawn[labels[i]]++;
  for (const d of drawn) assert.ok(Math.abs(d / order.length - 1 / 3) < 0.05, `drawn ${drawn}`);
  assert.equal(new Set(order.filter((i) => labels[i] === 2)).size, 10, 'all 10 of the small class appear');
  assert.deepEqual(balancedOrder(labels, 3, 4, 0), order);
  assert.notDeepEqual(balancedOrder(labels, 3, 4, 1), order);
  assert.notDeepEqual(balancedOrder(labels, 3, 5, 0), order);
  // Classes without examples are never drawn.
  const missing = balancedOrder(labelsOf([10, 0, 10]), 3, 0, 0);
  assert.ok(missing.every((i) => i < 20));
});
