import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from '../../../src/shared/errors';
import { baseConfig, freshStore, runWithEpochs } from './helpers';

test('listRuns filters by experiment, tag and status and sorts by a metric in its direction', () => {
  const { store } = freshStore();
  const low = runWithEpochs(store, { epochs: 3, experiment: 'bees', offset: -0.1 });
  const high = runWithEpochs(store, { epochs: 3, experiment: 'bees', offset: 0.1 });
  const other = runWithEpochs(store, { epochs: 5, experiment: 'imagenette' });
  const empty = store.createRun({ config: {}, snapshotId: null, backbone: 'b', backend: 'wasm', seed: 1, strategy: 'head', experiment: 'bees' }).id;
  store.tag(high, 'best');
  store.setStatus(low, 'finished');

  assert.deepEqual(store.listRuns().map((r) => r.id), [empty, other, high, low], 'newest first by default');
  assert.deepEqual(store.listRuns({ experiment: 'bees' }).map((r) => r.id).sort(), [low, high, empty].sort());
  assert.deepEqual(store.listRuns({ tag: 'best' }).map((r) => r.id), [high]);
  assert.deepEqual(store.listRuns({ status: 'finished' }).map((r) => r.id), [low]);
  // accuracy: higher first; loss: lower first; runs without the metric last.
  assert.deepEqual(store.listRuns({ experiment: 'bees', sort: 'val_accuracy' }).map((r) => r.id), [high, low, empty]);
  assert.deepEqual(store.listRuns({ experiment: 'bees', sort: 'val_loss' }).map((r) => r.id), [low, high, empty]);
  assert.deepEqual(store.listRuns({ experiment: 'bees', sort: 'val_loss', order: 'desc' }).map((r) => r.id), [high, low, empty]);
  assert.equal(store.listRuns({ limit: 2 }).length, 2);
  assert.deepEqual(store.listRuns({ limit: 2, offset: 3 }).map((r) => r.id), [low]);

  const h = store.listRuns({ tag: 'best' })[0];
  assert.deepEqual(h.tags, ['best']);
  assert.equal(h.lastEpoch, 2);
  assert.ok(Math.abs(h.metrics.val_accuracy.best! - 0.68) < 1e-9);
  assert.throws(() => store.listRuns({ experiment: 'wasps' }), (e: AppError) => e.code === 'not_found' && /Known experiments: bees, Default|bees, imagenette/.test(e.message));
  assert.deepEqual(store.listExperiments().map((e) => [e.name, e.runCount]), [['bees', 3], ['imagenette', 1]]);
  store.close();
});

test('compare shows only differing params by default, final/best metrics and curves aligned by epoch', () => {
  const { store } = freshStore();
  const a = runWithEpochs(store, { epochs: 3 });
  const b = runWithEpochs(store, { epochs: 5, config: { ...baseConfig, optimizer: { ...baseConfig.optimizer, lr: 0.01 }, epochs: 20 }, offset: 0.05 });
  const c = store.compareRuns([a, b]);
  assert.deepEqual(c.runs.map((r) => r.id), [a, b]);
  assert.deepEqual(
    c.params.map((p) => [p.key, p.values]),
    [['epochs', ['10', '20']], ['optimizer.lr', ['0.001', '0.01']]],
  );
  assert.equal(c.sameParams, 6);
  const all = store.compareRuns([a, b], { all: true });
  assert.equal(all.params.length, 8);
  assert.equal(all.params.filter((p) => p.differs).length, 2);

  const acc = c.metrics.find((m) => m.key === 'val_accuracy')!;
  assert.equal(acc.direction, 'max');
  assert.ok(Math.abs(acc.final[0]! - 0.58) < 1e-9 && Math.abs(acc.final[1]! - 0.71) < 1e-9);
  assert.equal(acc.bestRun, 1);
  assert.deepEqual(acc.bestEpoch, [2, 4]);
  const loss = c.metrics.find((m) => m.key === 'val_loss')!;
  assert.equal(loss.direction, 'min');
  // a: 1.5 - 0.1 * 2 = 1.3; b runs longer: 1.5 - 0.1 * 4 + 0.05 = 1.15, lower is better.
  assert.ok(Math.abs(loss.best[0]! - 1.3) < 1e-9 && Math.abs(loss.best[1]! - 1.15) < 1e-9);
  assert.equal(loss.bestRun, 1);

  const curve = c.curves.find((k) => k.key === 'train_loss')!;
  assert.deepEqual(curve.epochs, [0, 1, 2, 3, 4]);
  // The last step of each epoch (1.9 - 0.1e), and null where run a has no epoch.
  assert.deepEqual(curve.values[0].map((v) => (v === null ? null : Number(v.toFixed(6)))), [1.9, 1.8, 1.7, null, null]);
  assert.equal(curve.values[1].length, 5);
  assert.deepEqual(c.warnings.filter((w) => /snapshot/.test(w)), []);
  store.close();
});

test('compare warns when dataset snapshots differ and rejects a single run', () => {
  const { store } = freshStore();
  const a = runWithEpochs(store, { epochs: 2, snapshotId: 'snap-a' });
  const b = runWithEpochs(store, { epochs: 2, snapshotId: 'snap-b' });
  store.setStatus(a, 'finished');
  store.setStatus(b, 'finished');
  const c = store.compareRuns([b, a]);
  assert.equal(c.warnings.length, 1);
  assert.match(c.warnings[0], /different dataset snapshots/);
  assert.match(c.warnings[0], /snap-a/);
  assert.deepEqual(c.params, []);
  assert.throws(() => store.compareRuns([a, a]), (e: AppError) => e.code === 'bad_arguments');
  store.close();
});

test('export writes long-format metric CSV, a one-row-per-run CSV and JSON', () => {
  const { store } = freshStore();
  const a = runWithEpochs(store, { epochs: 2, name: 'with, comma' });
  const b = runWithEpochs(store, { epochs: 1 });
  store.tag(a, 'x');
  const csv = store.exportRuns([a, b], 'csv');
  const lines = csv.text.trimEnd().split('\n');
  assert.equal(lines[0], 'run_id,run_name,experiment,key,step,epoch,value,time');
  assert.equal(csv.rows, 8 + 4);
  assert.equal(lines.length, 13);
  assert.ok(lines[1].startsWith(`${a},"with, comma",Default,`));
  const runsCsv = store.exportRuns([a, b], 'csv', { table: 'runs' });
  const header = runsCsv.text.split('\n')[0].split(',');
  assert.ok(header.includes('param.optimizer.lr') && header.includes('val_accuracy.best') && header.includes('tags'));
  assert.equal(runsCsv.rows, 2);
  const json = JSON.parse(store.exportRuns([a], 'json').text);
  assert.equal(json.format, 'finetune-studio-runs');
  assert.equal(json.runs[0].id, a);
  assert.equal(json.runs[0].series.val_accuracy.length, 2);
  assert.deepEqual(json.runs[0].config, baseConfig);
  assert.throws(() => store.exportRuns([a], 'xml' as never), /Expected one of: csv, json/);
  store.close();
});
