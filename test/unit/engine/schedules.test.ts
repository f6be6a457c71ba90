import { test } from 'node:test';
import assert from 'node:assert/strict';
import { annealCos, buildSchedule, previewSchedule, runSchedule, schedulePhases } from '../../../src/main/engine/schedules';
import { parseConfig, scheduleSchema } from '../../../src/main/engine/config';
import { AppError } from '../../../src/shared/errors';

const sched = (over: Record<string, unknown>, epochs = 10, stepsPerEpoch = 10) => buildSchedule(scheduleSchema.parse(over), { epochs, stepsPerEpoch });
const close = (a: number, b: number, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol, `${a} != ${b}`);

test('constant is 1 everywhere', () => {
  const f = sched({ name: 'constant' });
  for (const p of [0, 0.3, 1]) assert.equal(f(p), 1);
});

test('step multiplies by gamma every stepEpochs', () => {
  const f = sched({ name: 'step', stepEpochs: 3, gamma: 0.5 });
  close(f(0), 1);
  close(f(0.29), 1);
  close(f(0.3), 0.5); // epoch 3 exactly, despite 0.3 * 10 = 2.9999999999999996
  close(f(0.61), 0.25);
  close(f(0.95), 0.125);
});

test('multi-step drops at each milestone', () => {
  const f = sched({ name: 'multi-step', milestones: [5, 2], gamma: 0.1 });
  close(f(0.1), 1);
  close(f(0.2), 0.1);
  close(f(0.49), 0.1);
  close(f(0.5), 0.01, 1e-12);
});

test('exponential is gamma^epoch, continuous per batch', () => {
  const f = sched({ name: 'exponential', gamma: 0.9 });
  close(f(0), 1);
  close(f(0.1), 0.9);
  close(f(0.25), 0.9 ** 2.5);
  close(f(1), 0.9 ** 10);
});

test('cosine goes from 1 to minMult through the midpoint', () => {
  const f = sched({ name: 'cosine', minMult: 0.1 });
  close(f(0), 1);
  close(f(0.5), 0.55);
  close(f(1), 0.1);
  close(f(0.25), 0.1 + 0.9 * (1 + Math.cos(Math.PI / 4)) / 2);
});

test('cosine with warm restarts: T0 = 1 epoch, T_mult = 2 restarts at epochs 1, 3, 7', () => {
  const f = sched({ name: 'cosine-restarts', t0Epochs: 1, tMult: 2 }, 10);
  close(f(0), 1);
  close(f(0.05), 0.5); // half of the first 1-epoch period
  close(f(0.1), 1); // restart at epoch 1
  close(f(0.2), 0.5); // epoch 2 = middle of the 2-epoch period [1, 3)
  close(f(0.3), 1); // restart at epoch 3
  close(f(0.5), 0.5); // middle of [3, 7)
  close(f(0.7), 1); // restart at epoch 7
  const g = sched({ name: 'cosine-restarts', t0Epochs: 2, tMult: 1 }, 10);
  close(g(0.1), 0.5);
  close(g(0.2), 1);
  close(g(0.3), 0.5);
});

test('cyclical triangular, triangular2 and exp_range follow PyTorch CyclicLR', () => {
  const tri = sched({ name: 'cyclical', cyclicMode: 'triangular', halfCycleEpochs: 1, baseMult: 0.1 }, 4);
  close(tri(0), 0.1);
  close(tri(0.125), 0.55); // half-way up (epoch 0.5)
  close(tri(0.25), 1); // top at epoch 1
  close(tri(0.5), 0.1); // bottom at epoch 2
  close(tri(0.75), 1); // second top, same height
  const tri2 = sched({ name: 'cyclical', cyclicMode: 'triangular2', halfCycleEpochs: 1, baseMult: 0.1 }, 4);
  close(tri2(0.25), 1);
  close(tri2(0.75), 0.1 + 0.9 / 2); // the second cycle's amplitude is halved
  const exp = sched({ name: 'cyclical', cyclicMode: 'exp_range', halfCycleEpochs: 1, baseMult: 0, gamma: 0.99 }, 4, 10);
  close(exp(0.25), 0.99 ** 10); // top of cycle 1 at step 10
  close(exp(0.75), 0.99 ** 30);
});

test('one-cycle rises from 1/div to 1 at pctStart and anneals to 1/(div*finalDiv)', () => {
  const f = sched({ name: 'one-cycle', pctStart: 0.25, divFactor: 25, finalDivFactor: 1e4 });
  close(f(0), 1 / 25);
  close(f(0.125), annealCos(1 / 25, 1, 0.5));
  close(f(0.25), 1);
  close(f(1), 1 / 25 / 1e4, 1e-15);
  close(f(0.625), annealCos(1, 1 / 25 / 1e4, 0.5));
});

test('linear warm-up in front of any schedule', () => {
  const f = sched({ name: 'cosine', warmupEpochs: 2, warmupStartMult: 0 }, 10);
  close(f(0), 0);
  close(f(0.1), 0.5);
  close(f(0.2), 1); // warm-up done, cosine starts at 1
  close(f(0.6), 0.5); // middle of the remaining 8 epochs
  close(f(1), 0);
  const s = sched({ name: 'step', stepEpochs: 1, gamma: 0.5, warmupEpochs: 1, warmupStartMult: 0.2 }, 3);
  close(s(0), 0.2);
  close(s(1 / 6), 0.6);
  close(s(0.5), 1); // epoch 1.5 = half an epoch into the step schedule
  close(s(0.7), 0.5); // epoch 2.1: the step schedule's first drop
});

test('phases: the schedule restarts at each unfreezing stage unless scope is run', () => {
  const c = parseConfig({ epochs: 6, schedule: { name: 'cosine', scope: 'phase' }, unfreeze: { stages: [{ afterEpoch: 3, groups: 2 }] } });
  assert.deepEqual(schedulePhases(c), [
    { startEpoch: 0, epochs: 3 },
    { startEpoch: 3, epochs: 3 },
  ]);
  const at = runSchedule(c, 10);
  close(at(0), 1);
  close(at(15), 0.5);
  close(at(30), 1); // restart
  close(at(45), 0.5);
  const run = runSchedule(parseConfig({ ...c, schedule: { name: 'cosine', scope: 'run' } }), 10);
  close(run(30), 0.5);
});

test('previewSchedule samples the curve with head lrs', () => {
  const pts = previewSchedule({ epochs: 4, optimizer: { lr: 0.01 }, schedule: { name: 'cosine' } }, 400, 5);
  assert.equal(pts.length, 5);
  assert.deepEqual(pts.map((p) => p.step), [0, 100, 200, 300, 400]);
  close(pts[0].lr, 0.01);
  close(pts[2].multiplier, 0.5);
  close(pts[4].lr, 0);
  assert.equal(pts[2].epoch, 2);
});

test('unknown schedule names throw AppError listing the accepted values', () => {
  assert.throws(
    () => previewSchedule({ schedule: { name: 'cosin' as never } }, 100),
    (e: unknown) => e instanceof AppError && /Unknown schedule "cosin"\. Expected one of: constant, step, multi-step/.test(e.message),
  );
  assert.throws(() => buildSchedule({ ...scheduleSchema.parse({}), name: 'bogus' as never }, { epochs: 1, stepsPerEpoch: 1 }), /Expected one of/);
});

test('reduce-on-plateau scales the lr by factor after patience epochs without improvement', async () => {
  const { ReduceOnPlateau } = await import('../../../src/main/engine/callbacks');
  const { plateauSchema } = await import('../../../src/main/engine/config');
  const cb = new ReduceOnPlateau(plateauSchema.parse({ enabled: true, monitor: 'val_loss', factor: 0.5, patience: 1, minDelta: 0.01, minMult: 0.2 }));
  const events: unknown[] = [];
  const s = { lrScale: 1, history: [] as { epoch: number; val_loss: number }[], emit: (e: unknown) => events.push(e) };
  const scales: number[] = [];
  [1.0, 0.8, 0.795, 0.79, 0.7, 0.71, 0.72, 0.73, 0.74, 0.75].forEach((v, i) => {
    s.history.push({ epoch: i + 1, val_loss: v });
    cb.afterEpoch(s as never);
    scales.push(s.lrScale);
  });
  // 0.795 and 0.79 are within min_delta of 0.8: the second one reduces; 0.7 improves; then two reductions down to the floor.
  assert.deepEqual(scales, [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2]);
  assert.deepEqual(events.map((e) => (e as { epoch: number }).epoch), [4, 7, 9]);
  const restored = new ReduceOnPlateau(plateauSchema.parse({ enabled: true }));
  restored.setState(JSON.parse(JSON.stringify(cb.getState())));
  assert.deepEqual(restored.getState(), cb.getState());
});
