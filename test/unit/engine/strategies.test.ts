import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PRESETS, STRATEGY_INFO, mergeConfig, resolveConfig } from '../../../src/main/engine/strategies';
import { STRATEGIES, defaultConfig } from '../../../src/main/engine/config';
import { AppError } from '../../../src/shared/errors';

test('every strategy resolves to a complete config with its name', () => {
  for (const s of STRATEGIES) {
    const c = resolveConfig(s);
    assert.equal(c.strategy, s);
    assert.deepEqual(Object.keys(c).sort(), Object.keys(defaultConfig()).sort());
    assert.ok(STRATEGY_INFO.some((i) => i.id === s));
  }
});

test('presets read like the tutorials', () => {
  const head = resolveConfig('head');
  assert.equal(head.trainable.mode, 'head');
  const prog = resolveConfig('progressive');
  assert.equal(prog.epochs, 6);
  assert.deepEqual(prog.unfreeze.stages, [{ afterEpoch: 3, groups: 4, lrMult: 0.1 }]);
  assert.equal(prog.schedule.name, 'cosine');
  const disc = resolveConfig('discriminative');
  assert.deepEqual([disc.trainable.mode, disc.lrs.mode], ['all', 'slice']);
  const full = resolveConfig('full');
  assert.equal(full.trainable.mode, 'all');
  const auto = resolveConfig('auto');
  assert.deepEqual([auto.optimizer.name, auto.optimizer.weightDecay, auto.loss.labelSmoothing, auto.trainBatchNormStats, auto.tta], ['adamw', 0.01, 0.1, false, 'flip']);
  assert.ok(auto.unfreeze.stages.length > 0);
  assert.equal(PRESETS.auto.strategy, undefined, 'presets do not name themselves; resolveConfig does');
});

test('overrides merge deeply; arrays replace', () => {
  const c = resolveConfig('progressive', { epochs: 8, optimizer: { lr: 3e-4 }, unfreeze: { stages: [{ afterEpoch: 2, groups: 6 }] } });
  assert.equal(c.epochs, 8);
  assert.equal(c.optimizer.lr, 3e-4);
  assert.equal(c.optimizer.name, 'adam', 'the preset value survives next to the override');
  assert.deepEqual(c.unfreeze.stages, [{ afterEpoch: 2, groups: 6, lrMult: 1 }]);
  assert.equal(c.unfreeze.resetOptimizer, true);
  assert.deepEqual(mergeConfig({ a: { b: 1, c: [1, 2] } }, { a: { c: [3] } }), { a: { b: 1, c: [3] } });
});

test('unknown strategies and bad fields are AppErrors listing what is accepted', () => {
  assert.throws(() => resolveConfig('fine'), (e: unknown) => e instanceof AppError && /Unknown strategy "fine"\. Expected one of: head, progressive, discriminative, full, auto\./.test(e.message));
  assert.throws(() => resolveConfig('head', { schedule: { name: 'cosin' } }), /schedule\.name: Unknown schedule "cosin"\. Expected one of: constant, step/);
  assert.throws(() => resolveConfig('head', { epochs: 0 }), /epochs:/);
});
