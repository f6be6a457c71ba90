/**
 * The training services end to end on real photos and the real backbone: import, train in
 * the engine worker with the run in a real SQLite log, evaluate, export with the parity
 * check, predict, compare two strategies.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { boot, type Booted } from '../../../src/main/boot';
import type { EventEnvelope } from '../../../src/shared/contract';
import { modelsMirror, tempDir } from '../../helpers/paths';
import { hymenopteraSubset } from '../../helpers/data';

let app: Booted;
let snapshotId: string;
const events: EventEnvelope[] = [];
const runIds: Record<string, string> = {};

before(async () => {
  app = await boot({ home: tempDir('finetune-train-home-'), mirrors: [modelsMirror] });
  app.ctx.events.subscribe((e) => events.push(e));
  const data = hymenopteraSubset({ train: 24, val: 12 });
  const report = await app.call('datasets:import', { path: data });
  snapshotId = report.snapshotId;
  assert.deepEqual(report.classes, ['ants', 'bees']);
});

after(async () => {
  await app?.close();
});

test('a head run trains in the worker and lands in the log, epoch by epoch', async () => {
  const { runId } = await app.call('train:start', { snapshotId, strategy: 'head', config: { epochs: 2, batchSize: 16 }, name: 'head-run' });
  runIds.head = runId;
  assert.equal(app.store.getRunRecord(runId).status, 'running');
  const result = await app.runs.wait(runId);
  assert.equal(result.status, 'finished');
  assert.equal(result.backend, 'wasm');
  assert.equal(result.epochs.length, 2);
  const run = app.store.getRun(runId);
  assert.equal(run.status, 'finished');
  assert.equal(run.strategy, 'head');
  assert.equal(run.snapshotId, snapshotId);
  assert.deepEqual(run.epochs.val_accuracy.map((p) => p.epoch), [1, 2]);
  assert.ok(run.epochs.val_accuracy.every((p) => p.value >= 0 && p.value <= 1));
  assert.equal(run.params.strategy, 'head');
  // how it ran here is in the log too
  assert.equal(run.params['runtime.backend'], 'wasm');
  assert.match(run.backend, /^wasm( \(\d threads\))?$/, 'the run names the backend its worker chose');
  assert.equal(run.params['runtime.micro_batch'], String(result.microBatch));
  assert.ok(result.microBatch >= 1 && result.microBatch <= 16);
  assert.match(String(run.params['runtime.feature_cache']), /^\w+ \(\d+ views?, (memory|disk)\)$/);
  assert.ok(run.lastCheckpoint && fs.existsSync(run.lastCheckpoint), 'last checkpoint recorded');
  // the UI got live events for this run
  assert.ok(events.some((e) => e.event === 'train:progress' && (e.payload as { runId: string }).runId === runId));
  assert.equal(events.filter((e) => e.event === 'train:epoch' && (e.payload as { runId: string }).runId === runId).length, 2);
  assert.ok(events.some((e) => e.event === 'train:status' && (e.payload as { status: string }).status === 'finished'));
});

test('evaluation: confusion matrix, per-class metrics and top losses, stored with the run', async () => {
  const e = await app.call('eval:run', { runId: runIds.head });
  assert.equal(e.classNames.length, 2);
  const total = e.confusion.flat().reduce((a, b) => a + b, 0);
  assert.equal(total, 24);
  assert.equal(e.perClass.reduce((a, c) => a + c.support, 0), 24);
  const diag = e.confusion[0][0] + e.confusion[1][1];
  assert.ok(Math.abs(e.accuracy - diag / total) < 1e-9);
  assert.ok(e.topLosses.length > 0 && fs.existsSync(e.topLosses[0].path));
  const stored = await app.call('eval:get', { runId: runIds.head, split: 'val' });
  assert.equal(stored?.accuracy, e.accuracy);
});

test('export: a LayersModel folder that predicts as the app did (parity), then predict with it', async () => {
  const out = path.join(tempDir('finetune-export-'), 'model');
  const r = await app.call('export:run', { runId: runIds.head, outDir: out });
  assert.equal(r.parity.ok, true, r.parity.message);
  assert.equal(r.parity.images, 24);
  for (const f of ['model.json', 'weights.bin', 'labels.json', 'preprocessing.json', 'README.md']) assert.ok(fs.existsSync(path.join(out, f)), f);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(out, 'labels.json'), 'utf8')), ['ants', 'bees']);
  const img = fs.readdirSync(path.join(app.store.getRun(runIds.head).snapshot!.root, 'val', 'bees'))[0];
  const file = path.join(app.store.getRun(runIds.head).snapshot!.root, 'val', 'bees', img);
  const [fromExport] = await app.call('predict:images', { exportDir: out, paths: [file] });
  const [fromRun] = await app.call('predict:images', { runId: runIds.head, images: [{ name: img, base64: fs.readFileSync(file).toString('base64') }] });
  assert.equal(fromExport.top, fromRun.top);
  assert.ok(Math.abs(fromExport.confidence - fromRun.confidence) < 1e-3);
  assert.equal(fromExport.probabilities.length, 2);
  assert.ok(Math.abs(fromExport.probabilities.reduce((a, p) => a + p.p, 0) - 1) < 1e-4);
  const artifacts = app.store.getRun(runIds.head).artifacts;
  assert.ok(artifacts.some((a) => a.kind === 'export' && a.path === out));
});

test('a progressive run unfreezes at the planned epoch; compare shows the strategy difference', async () => {
  const plan = await app.call('train:plan', { snapshotId, strategy: 'progressive', config: { epochs: 2, batchSize: 16, unfreeze: { stages: [{ afterEpoch: 1, groups: 2, lrMult: 0.1 }] } } });
  const late = plan.groups.filter((g) => g.unfreezeAfterEpoch === 1);
  assert.equal(late.length, 2, JSON.stringify(plan.groups));
  assert.ok(plan.schedule.length > 2);
  const { runId } = await app.call('train:start', { snapshotId, strategy: 'progressive', config: { epochs: 2, batchSize: 16, unfreeze: { stages: [{ afterEpoch: 1, groups: 2, lrMult: 0.1 }] } }, name: 'progressive-run' });
  runIds.progressive = runId;
  const result = await app.runs.wait(runId);
  assert.equal(result.status, 'finished');
  const unfrozen = events.filter((e) => e.event === 'train:unfrozen' && (e.payload as { runId: string }).runId === runId);
  assert.equal(unfrozen.length, 1);
  assert.deepEqual((unfrozen[0].payload as { groups: string[] }).groups, late.map((g) => g.name));
  const cmp = await app.call('runs:compare', { ids: [runIds.head, runIds.progressive] });
  const strategy = cmp.params.find((p) => p.key === 'strategy');
  assert.ok(strategy?.differs, 'strategy differs');
  assert.deepEqual(strategy?.values, ['head', 'progressive']);
  assert.equal(cmp.warnings.length, 0, 'same snapshot: no warning');
});

test('bad requests give clear errors', async () => {
  await assert.rejects(app.call('train:start', { snapshotId: 'ds-0000000000000000' }), /not in .*Import the folder again/);
  await assert.rejects(app.call('train:start', { snapshotId, backbone: 'resnet9000' }), /Unknown backbone "resnet9000"\. Expected one of: mobilenet_v2_0\.35_224/);
  await assert.rejects(app.call('train:start', { snapshotId, config: { schedule: { name: 'cosin' } } }), /Unknown schedule "cosin"\. Expected one of: constant/);
  await assert.rejects(app.call('train:pause', { runId: runIds.head }), /not training/);
});
