import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from '../../../src/shared/errors';
import { openStore } from '../../../src/main/store';
import { baseConfig, freshStore, runWithEpochs } from './helpers';

const runInput = { config: baseConfig, snapshotId: 'snap-a', backbone: 'mobilenet_v2_035', backend: 'wasm', seed: 7, strategy: 'progressive' };

test('createRun stores the record, the full config and the flattened params', () => {
  const { store } = freshStore();
  const run = store.createRun({ ...runInput, name: 'first try', experiment: 'ants-vs-bees' });
  assert.match(run.id, /^r-[0-9a-z]{9}-[0-9a-z]{6}$/);
  assert.equal(run.status, 'running');
  assert.equal(run.experiment, 'ants-vs-bees');
  assert.equal(run.appVersion, '0.1.0-test');
  assert.equal(run.seed, 7);
  assert.equal(run.endedAt, null);
  const detail = store.getRun(run.id);
  assert.deepEqual(detail.config, baseConfig);
  assert.deepEqual(detail.params, {
    backbone: 'mobilenet_v2_035',
    epochs: '10',
    batchSize: '16',
    'optimizer.name': 'adam',
    'optimizer.lr': '0.001',
    'optimizer.betas': '[0.9,0.999]',
    'augment.flip': 'true',
    'augment.rotate': '10',
  });
  assert.equal(store.ensureExperiment('ants-vs-bees'), run.experimentId);
  assert.throws(() => store.createExperiment('ants-vs-bees'), (e: AppError) => e.code === 'exists');
  const second = store.createRun(runInput);
  assert.equal(second.experiment, 'Default');
  assert.equal(second.name, 'run-1');
  assert.ok(second.id > run.id, 'ids sort by creation time');
  store.close();
});

test('params are written once: same value is fine, a different value is an error', () => {
  const { store } = freshStore();
  const run = store.createRun(runInput);
  store.logParams(run.id, { 'optimizer.lr': 0.001, classes: 2 });
  assert.throws(
    () => store.logParams(run.id, { 'optimizer.lr': 0.01 }),
    (e: AppError) => e.code === 'param_conflict' && /already "0.001"/.test(e.message) && /new run/.test(e.message),
  );
  assert.equal(store.getRun(run.id).params.classes, '2');
  assert.equal(store.getRun(run.id).params['optimizer.lr'], '0.001');
  store.close();
});

test('NaN and ±Infinity round-trip through metrics, epochs, summaries and a reopen', () => {
  const { store, file } = freshStore();
  const run = store.createRun(runInput);
  store.logMetrics(run.id, [
    { key: 'train_loss', step: 0, epoch: 0, value: 0.7 },
    { key: 'train_loss', step: 1, epoch: 0, value: Infinity },
    { key: 'train_loss', step: 2, epoch: 1, value: -Infinity },
    { key: 'train_loss', step: 3, epoch: 1, value: NaN },
    { key: 'val_accuracy', step: 3, epoch: 1, value: NaN },
  ]);
  store.close();
  const again = openStore(file, { appVersion: '0.1.0-test' });
  const values = again.getMetrics(run.id).series.train_loss.map((p) => p.value);
  assert.equal(values.length, 4);
  assert.equal(values[0], 0.7);
  assert.equal(values[1], Infinity);
  assert.equal(values[2], -Infinity);
  assert.ok(Number.isNaN(values[3]));
  const detail = again.getRun(run.id);
  assert.deepEqual(detail.epochs.train_loss.map((p) => p.step), [1, 3], 'last step of each epoch');
  assert.equal(detail.epochs.train_loss[0].value, Infinity);
  assert.ok(Number.isNaN(detail.epochs.train_loss[1].value));
  const loss = detail.metrics.train_loss;
  assert.ok(Number.isNaN(loss.final), 'final keeps NaN');
  assert.equal(loss.best, -Infinity, 'best ignores NaN, keeps infinities');
  assert.equal(loss.count, 4);
  const acc = detail.metrics.val_accuracy;
  assert.ok(Number.isNaN(acc.final));
  assert.equal(acc.best, null, 'no finite-or-infinite value yet');
  const json = JSON.parse(again.exportRuns([run.id], 'json').text);
  assert.deepEqual(json.runs[0].series.train_loss.map((p: { value: unknown }) => p.value), [0.7, 'Infinity', '-Infinity', 'NaN']);
  assert.match(again.exportRuns([run.id], 'csv').text, /train_loss,3,1,NaN,/);
  again.close();
});

test('logMetrics is one transaction: a bad row rolls back the whole batch', () => {
  const { store } = freshStore();
  const run = store.createRun(runInput);
  assert.throws(
    () =>
      store.logMetrics(run.id, [
        { key: 'val_loss', step: 0, epoch: 0, value: 1 },
        { key: 'val_loss', step: -1, epoch: 0, value: 1 },
      ]),
    (e: AppError) => e.code === 'bad_metric' && /row 1/.test(e.message),
  );
  assert.throws(() => store.logMetrics(run.id, [{ key: 'x', step: 0, epoch: 0, value: '1' as unknown as number }]), /not a number/);
  assert.deepEqual(store.getMetrics(run.id).keys, []);
  assert.throws(
    () => store.logMetrics('r-nope', [{ key: 'x', step: 0, epoch: 0, value: 1 }]),
    (e: AppError) => e.code === 'not_found' && /finetune runs list/.test(e.message),
  );
  store.close();
});

test('final is the highest step, best follows the key direction; a later write of a step wins', () => {
  const { store } = freshStore();
  const run = store.createRun(runInput);
  store.logMetrics(run.id, [
    { key: 'val_accuracy', step: 10, epoch: 0, value: 0.6 },
    { key: 'val_loss', step: 10, epoch: 0, value: 0.9 },
    { key: 'lr', step: 10, epoch: 0, value: 0.01 },
  ]);
  store.logMetrics(run.id, [
    { key: 'val_accuracy', step: 20, epoch: 1, value: 0.8 },
    { key: 'val_loss', step: 20, epoch: 1, value: 0.5 },
    { key: 'lr', step: 20, epoch: 1, value: 0.005 },
  ]);
  store.logMetrics(run.id, [
    { key: 'val_accuracy', step: 30, epoch: 2, value: 0.7 },
    { key: 'val_loss', step: 30, epoch: 2, value: 0.6 },
    { key: 'val_loss', step: 30, epoch: 2, value: 0.65 },
  ]);
  const m = store.getRun(run.id).metrics;
  assert.deepEqual([m.val_accuracy.final, m.val_accuracy.best, m.val_accuracy.bestEpoch], [0.7, 0.8, 1]);
  assert.deepEqual([m.val_loss.final, m.val_loss.best, m.val_loss.bestEpoch], [0.65, 0.5, 1]);
  assert.deepEqual([m.lr.final, m.lr.best, m.lr.direction], [0.005, null, null]);
  assert.equal(store.getRun(run.id).epochs.val_loss[2].value, 0.65);
  assert.deepEqual(store.getMetrics(run.id, { keys: ['val_loss'], afterStep: 10 }).series.val_loss.map((p) => p.value), [0.5, 0.6, 0.65]);
  store.close();
});

test('status, checkpoint, artifacts, evaluations and snapshots are stored with the run', () => {
  const { store } = freshStore();
  store.upsertSnapshot({ id: 'snap-a', name: 'hymenoptera', root: '/data/hymenoptera', summary: { classes: ['ants', 'bees'], images: 397 } });
  const run = store.createRun(runInput);
  store.setCheckpoint(run.id, '/home/runs/x/last', 3);
  const art = store.addArtifact(run.id, { kind: 'checkpoint', path: '/home/runs/x/best', size: 1234, meta: { epoch: 2 } });
  assert.equal(art.kind, 'checkpoint');
  assert.deepEqual(art.meta, { epoch: 2 });
  assert.throws(() => store.addArtifact(run.id, { kind: 'model' as never, path: 'p', size: 1 }), /Expected one of: checkpoint, export, plot, eval/);
  store.saveEvaluation(run.id, 'val', { accuracy: 0.9, confusion: [[1, 0], [0, 1]] });
  store.saveEvaluation(run.id, 'val', { accuracy: 0.91 });
  store.saveEvaluation(run.id, 'parity:/tmp/export', { ok: true, mismatches: 0 });
  assert.deepEqual(store.getEvaluation(run.id, 'val'), { accuracy: 0.91 });
  assert.equal(store.getEvaluation(run.id, 'test'), null);
  store.setStatus(run.id, 'failed', { error: 'Out of memory at epoch 4' });
  assert.throws(() => store.setStatus(run.id, 'done' as never), /Expected one of: queued, running, finished/);
  const d = store.getRun(run.id);
  assert.equal(d.status, 'failed');
  assert.equal(d.error, 'Out of memory at epoch 4');
  assert.ok(d.endedAt !== null && d.endedAt >= d.startedAt);
  assert.equal(d.lastCheckpoint, '/home/runs/x/last');
  assert.equal(d.lastCheckpointEpoch, 3);
  assert.equal(d.artifacts.length, 1);
  assert.deepEqual(d.evaluations.map((e) => e.split), ['parity:/tmp/export', 'val']);
  assert.deepEqual(d.snapshot?.summary, { classes: ['ants', 'bees'], images: 397 });
  store.close();
});

test('runs are found by id, unique prefix or unique name; tags, notes and delete', () => {
  const { store } = freshStore();
  const a = runWithEpochs(store, { epochs: 2, name: 'baseline' });
  const b = runWithEpochs(store, { epochs: 2, name: 'baseline' });
  assert.equal(store.resolveRunId(a), a);
  assert.equal(store.resolveRunId(b.slice(0, -2)), b);
  assert.throws(() => store.resolveRunId('baseline'), (e: AppError) => e.code === 'ambiguous');
  assert.throws(() => store.resolveRunId('r-'), (e: AppError) => e.code === 'ambiguous' && /more of the id/.test(e.message));
  assert.throws(() => store.getRun('r-missing'), (e: AppError) => e.code === 'not_found' && /finetune runs list/.test(e.message));
  assert.deepEqual(store.tag(a, 'keeper'), ['keeper']);
  assert.deepEqual(store.tag(a, 'keeper'), ['keeper']);
  assert.deepEqual(store.tag(a, 'aug'), ['aug', 'keeper']);
  assert.deepEqual(store.untag(a, 'aug'), ['keeper']);
  store.note(a, 'lr too high after epoch 1');
  assert.equal(store.getRun(a).notes, 'lr too high after epoch 1');
  // The run is owned by this (live) process: deleting it needs force.
  assert.throws(() => store.deleteRun(a), (e: AppError) => e.code === 'run_active');
  store.setStatus(a, 'finished');
  assert.equal(store.deleteRun(a), a);
  assert.throws(() => store.getRun(a), (e: AppError) => e.code === 'not_found');
  assert.equal(store.resolveRunId('baseline'), b, 'the name is unique again');
  assert.equal(store.integrityCheck(), 'ok');
  store.close();
});
