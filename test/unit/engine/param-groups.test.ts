import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../src/main/engine/backend';
import { parseConfig } from '../../../src/main/engine/config';
import { describePlan, discriminativeLrs, groupLr, planGroups, trainableAfter } from '../../../src/main/engine/param-groups';
import { Head } from '../../../src/main/engine/heads';
import { GroupedOptimizer } from '../../../src/main/engine/optimizers';
import { StepRunner } from '../../../src/main/engine/step-runner';
import { pixelsToTensor } from '../../../src/main/engine/data';
import { AppError } from '../../../src/shared/errors';
import { FakeNet, FakeSource } from './fake-net';

const NAMES = ['stem', 'block_1', 'block_2', 'block_3', 'top'];

before(async () => {
  await initBackend();
});

test('freezing: head only, last n, named groups, everything', () => {
  const plan = (trainable: Record<string, unknown>) => planGroups(parseConfig({ trainable }), NAMES).initial;
  assert.deepEqual(plan({ mode: 'head' }), []);
  assert.deepEqual(plan({ mode: 'last', last: 2 }), [3, 4]);
  assert.deepEqual(plan({ mode: 'named', groups: ['top', 'block_1'] }), [1, 4]);
  assert.deepEqual(plan({ mode: 'all' }), [0, 1, 2, 3, 4]);
  assert.throws(
    () => plan({ mode: 'named', groups: ['block_9'] }),
    (e: unknown) => e instanceof AppError && /Unknown layer group "block_9"\. This backbone's groups are: stem, block_1/.test(e.message),
  );
});

test('discriminative lrs: uniform, explicit, slice(lo, hi), layer-wise decay', () => {
  const lrs = (lrsCfg: Record<string, unknown>) => discriminativeLrs(parseConfig({ optimizer: { lr: 1e-2 }, lrs: lrsCfg }), NAMES);
  assert.deepEqual(lrs({ mode: 'uniform' }), [1e-2, 1e-2, 1e-2, 1e-2, 1e-2]);
  assert.deepEqual(lrs({ mode: 'explicit', perGroup: { top: 5e-3, stem: 1e-5 } }), [1e-5, 1e-2, 1e-2, 1e-2, 5e-3]);
  // slice(1e-4, 1e-2) over 5 groups + head: ratio 100^(1/5) per step, head = 1e-2
  const s = lrs({ mode: 'slice', lo: 1e-4 });
  s.forEach((v, i) => assert.ok(Math.abs(v - 1e-4 * 100 ** (i / 5)) < 1e-15));
  const l = lrs({ mode: 'layerwise', decay: 0.9 });
  assert.ok(Math.abs(l[4] - 1e-2 * 0.9) < 1e-15);
  assert.ok(Math.abs(l[0] - 1e-2 * 0.9 ** 5) < 1e-15);
});

test('progressive unfreezing plan walks from the head down, with lr = head lr x m', () => {
  const c = parseConfig({
    optimizer: { lr: 1e-3 },
    unfreeze: { stages: [{ afterEpoch: 2, groups: 2, lrMult: 0.1 }, { afterEpoch: 4, groups: 2, lrMult: 0.01 }] },
  });
  const p = planGroups(c, NAMES);
  assert.deepEqual(p.stages.map((s) => s.groups), [[3, 4], [1, 2]]);
  assert.equal(p.earliestTrainable, 1);
  assert.deepEqual([...trainableAfter(p, 1)], []);
  assert.deepEqual([...trainableAfter(p, 2)].sort(), [3, 4]);
  assert.deepEqual([...trainableAfter(p, 5)].sort(), [1, 2, 3, 4]);
  assert.ok(Math.abs(groupLr(p, 4) - 1e-4) < 1e-15);
  assert.ok(Math.abs(groupLr(p, 1) - 1e-5) < 1e-15);
  const rows = describePlan(p);
  assert.deepEqual(rows.map((r) => r.fromEpoch), [null, 5, 5, 3, 3, 1]);
  assert.equal(planGroups(parseConfig({}), NAMES).earliestTrainable, NAMES.length);
});

test('param groups get their own lrs: frozen weights bit-identical, unfrozen moved in proportion to their lr', async () => {
  const run = async (lrs: Record<string, number>) => {
    const net = new FakeNet(8, 3);
    const cfg = parseConfig({ optimizer: { name: 'sgd', lr: 0.05, momentum: 0 }, trainable: { mode: 'named', groups: ['block_2', 'top'] } });
    const plan = planGroups(cfg, net.groups.map((g) => g.name));
    const head = new Head(cfg.head, net.outputShape, 2, 11);
    const opt = new GroupedOptimizer(cfg.optimizer);
    const runner = new StepRunner(net, head, opt, plan, { trainBatchNormStats: false, weightDecay: 0, loss: { labelSmoothing: 0, classWeights: null } });
    runner.setTrainable(plan.initial);
    assert.deepEqual(opt.groupNames, ['block_2', 'top', 'head']);
    const before = new Map([...net.getWeights()].map(([k, t]) => [k, t.dataSync().slice() as Float32Array]));
    const src = new FakeSource(8);
    const idx = [0, 1, 2, 3, 4, 5, 6, 7];
    const x = pixelsToTensor(await src.load(idx, { epoch: 0, augment: false }), 8, 8, net.preprocessing.scaling);
    runner.trainStep(x, 0, Int32Array.from(idx, (i) => src.labels[i]), opt.groupNames.map((n) => lrs[n]), 1, 8);
    x.dispose();
    const after = new Map([...net.getWeights()].map(([k, t]) => [k, t.dataSync().slice() as Float32Array]));
    head.dispose();
    opt.dispose();
    net.dispose();
    return { before, after };
  };
  const a = await run({ block_2: 0.01, top: 0.01, head: 0.05 });
  const b = await run({ block_2: 0.02, top: 0.01, head: 0.05 });
  for (const name of ['stem_conv/kernel', 'stem_bn/gamma', 'stem_bn/moving_mean', 'block_1_conv/kernel', 'block_1_bn/moving_variance', 'top_bn/moving_mean']) {
    assert.deepEqual(a.after.get(name), a.before.get(name), `${name} is frozen (or a moving statistic) and must not change`);
  }
  const delta = (r: typeof a, n: string) => r.after.get(n)!.map((v, i) => v - r.before.get(n)![i]);
  const da = delta(a, 'block_2_conv/kernel');
  const db = delta(b, 'block_2_conv/kernel');
  assert.ok(da.some((v) => v !== 0), 'an unfrozen weight moved');
  da.forEach((v, i) => assert.ok(Math.abs(db[i] - 2 * v) <= 1e-6 + 1e-3 * Math.abs(v), 'twice the lr, twice the step'));
  assert.deepEqual(delta(a, 'top_conv/kernel'), delta(b, 'top_conv/kernel'));
});
