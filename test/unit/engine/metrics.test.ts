import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classificationReport } from '../../../src/main/engine/metrics';

const close = (a: number, b: number, eps = 1e-9) => assert.ok(Math.abs(a - b) < eps, `${a} != ${b}`);

test('confusion matrix, per-class precision/recall/F1, macro and weighted averages', () => {
  // 3 classes; rows = probabilities
  const probs = new Float32Array([
    0.8, 0.1, 0.1, // y0 -> 0
    0.6, 0.3, 0.1, // y0 -> 0
    0.2, 0.7, 0.1, // y0 -> 1
    0.1, 0.8, 0.1, // y1 -> 1
    0.5, 0.4, 0.1, // y1 -> 0
    0.1, 0.2, 0.7, // y2 -> 2
  ]);
  const labels = new Int32Array([0, 0, 0, 1, 1, 2]);
  const r = classificationReport(probs, labels, ['a', 'b', 'c']);
  assert.deepEqual(r.confusion, [
    [2, 1, 0],
    [1, 1, 0],
    [0, 0, 1],
  ]);
  close(r.accuracy, 4 / 6);
  const [a, b, c] = r.perClass;
  close(a.precision, 2 / 3);
  close(a.recall, 2 / 3);
  close(b.precision, 1 / 2);
  close(b.recall, 1 / 2);
  close(c.f1, 1);
  assert.deepEqual([a.support, b.support, c.support], [3, 2, 1]);
  close(r.macro.f1, (2 / 3 + 1 / 2 + 1) / 3);
  close(r.weighted.recall, (3 * (2 / 3) + 2 * (1 / 2) + 1) / 6);
  close(r.topK[0].accuracy, r.accuracy);
  close(r.topK[1].accuracy, 1); // top-3 of 3 classes
  // top loss: the y1 example predicted 0 has p(true)=0.4; the y0->1 has p(true)=0.2: biggest loss
  assert.equal(r.topLosses[0].index, 2);
  assert.equal(r.topLosses[0].predicted, 1);
  close(r.topLosses[0].loss, -Math.log(0.2), 1e-6);
  close(r.loss, -(Math.log(0.8) + Math.log(0.6) + Math.log(0.2) + Math.log(0.8) + Math.log(0.4) + Math.log(0.7)) / 6, 1e-6);
});

test('a class never predicted has precision 0, not NaN', () => {
  const r = classificationReport(new Float32Array([0.9, 0.1, 0.8, 0.2]), new Int32Array([0, 1]), ['x', 'y']);
  assert.equal(r.perClass[1].precision, 0);
  assert.equal(r.perClass[1].f1, 0);
  assert.ok(Number.isFinite(r.macro.precision));
});
