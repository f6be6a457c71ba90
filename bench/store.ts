/**
 * Experiment-log speed: metric inserts (1,000,000 rows in batched transactions), listing
 * 10,000 runs with their best metric, comparing 10 runs of 100 epochs. Targets from issue 5:
 * inserts >= 200,000 rows/s, list and compare < 50 ms. Writes bench/results/store.json.
 *
 * Run: node --import tsx bench/store.ts
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openStore, type MetricRow, type Store } from '../src/main/store';

const loadAtStart = os.loadavg().map((x) => Math.round(x * 100) / 100);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetune-bench-store-'));
const config = { backbone: 'mobilenet_v2_035', epochs: 10, batchSize: 32, optimizer: { name: 'adam', lr: 0.001 }, augment: { flip: true } };
const newRun = (store: Store, i: number, experiment = 'bench') =>
  store.createRun({ config: { ...config, seed: i }, experiment, snapshotId: 'snap', backbone: 'mobilenet_v2_035', backend: 'wasm', seed: i, strategy: 'head' }).id;

function timeMs(fn: () => void): number {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

/** First (cold) call and the median of `n` warm calls. */
function measure(fn: () => void, n = 15): { firstMs: number; medianMs: number; maxMs: number } {
  const firstMs = timeMs(fn);
  const times = Array.from({ length: n }, () => timeMs(fn)).sort((a, b) => a - b);
  return { firstMs: round(firstMs), medianMs: round(times[Math.floor(n / 2)]), maxMs: round(times[n - 1]) };
}
const round = (x: number) => Math.round(x * 100) / 100;

// 1) 1,000,000 metric rows: 10 runs x 100 epochs x 1,000 rows, one transaction per epoch.
const insertDb = path.join(dir, 'inserts.sqlite');
let store = openStore(insertDb, { appVersion: 'bench' });
const keys = ['batch_loss', 'batch_accuracy', 'lr', 'grad_norm'];
const batchRows = 1000;
let total = 0;
let insertMs = 0;
for (let r = 0; r < 10; r++) {
  const id = newRun(store, r);
  for (let epoch = 0; epoch < 100; epoch++) {
    const rows: MetricRow[] = new Array(batchRows);
    for (let i = 0; i < batchRows; i++) {
      const step = epoch * (batchRows / keys.length) + Math.floor(i / keys.length);
      rows[i] = { key: keys[i % keys.length], step, epoch, value: Math.random() };
    }
    insertMs += timeMs(() => store.logMetrics(id, rows));
    total += batchRows;
  }
}
const inserts = { rows: total, rowsPerTransaction: batchRows, seconds: round(insertMs / 1000), rowsPerSecond: Math.round(total / (insertMs / 1000)), target: 200_000 };
store.close();
console.log('inserts', inserts);

// 2) 10,000 runs of 10 epochs x 5 keys, then list them all sorted by best val_accuracy.
const listDb = path.join(dir, 'list.sqlite');
store = openStore(listDb, { appVersion: 'bench' });
const setupStart = Date.now();
for (let i = 0; i < 10_000; i++) {
  const id = newRun(store, i, `exp-${i % 20}`);
  const rows: MetricRow[] = [];
  for (let e = 0; e < 10; e++) {
    const v = Math.random();
    rows.push(
      { key: 'train_loss', step: e, epoch: e, value: 1 - v }, { key: 'train_accuracy', step: e, epoch: e, value: v },
      { key: 'val_loss', step: e, epoch: e, value: 1.1 - v }, { key: 'val_accuracy', step: e, epoch: e, value: v * 0.9 },
      { key: 'lr', step: e, epoch: e, value: 0.001 },
    );
  }
  store.logMetrics(id, rows);
}
const setupSeconds = (Date.now() - setupStart) / 1000;
// A fresh connection lists cold (builds the summary cache), then warm; then after another
// connection (a training process) logged an epoch to one run: only that run is re-read.
store.close();
store = openStore(listDb, { appVersion: 'bench' });
const writer = openStore(listDb, { appVersion: 'bench' });
const someRun = writer.listRuns({ limit: 1 })[0].id;
let listed = 0;
const listCold = round(timeMs(() => (listed = store.listRuns({ sort: 'val_accuracy', limit: 10_000 }).length)));
const listBest = measure(() => store.listRuns({ sort: 'val_accuracy', limit: 10_000 }));
const afterWrite: number[] = [];
for (let i = 0; i < 15; i++) {
  writer.logMetrics(someRun, [{ key: 'val_accuracy', step: 100 + i, epoch: 10 + i, value: Math.random() }]);
  afterWrite.push(timeMs(() => store.listRuns({ sort: 'val_accuracy', limit: 10_000 })));
}
afterWrite.sort((a, b) => a - b);
const listStarted = measure(() => store.listRuns({ limit: 10_000 }));
writer.close();
const small = openStore(listDb, { appVersion: 'bench' });
const oneExperimentCold = round(timeMs(() => small.listRuns({ experiment: 'exp-3', sort: 'val_loss' })));
small.close();

// 3) Compare 10 runs x 100 epochs (50 batch rows + 5 epoch metrics per epoch) in the same log.
const ids: string[] = [];
for (let r = 0; r < 10; r++) {
  const id = newRun(store, 20_000 + r, 'compare');
  for (let e = 0; e < 100; e++) {
    const rows: MetricRow[] = [];
    for (let b = 0; b < 50; b++) rows.push({ key: 'batch_loss', step: e * 50 + b, epoch: e, value: Math.random() });
    const last = e * 50 + 49;
    for (const key of ['train_loss', 'train_accuracy', 'val_loss', 'val_accuracy', 'lr']) rows.push({ key, step: last, epoch: e, value: Math.random() });
    store.logMetrics(id, rows);
  }
  ids.push(id);
}
let curves = 0;
const compare = measure(() => (curves = store.compareRuns(ids).curves.length));
const compareAll = measure(() => store.compareRuns(ids, { all: true }));
const runDetail = measure(() => store.getRun(ids[0]));
store.close();

const result = {
  bench: 'store',
  date: new Date().toISOString(),
  // Other engineers share this 2-core machine: the load average says how contended the run was.
  machine: { cpus: os.cpus().length, node: process.version, loadAverageAtStart: loadAtStart, loadAverageAtEnd: os.loadavg().map(round) },
  inserts,
  list: {
    runs: listed,
    metricKeysPerRun: 5,
    setupSeconds: round(setupSeconds),
    coldFirstListMs: listCold,
    sortByBestValAccuracy: listBest,
    afterAnotherConnectionLoggedAnEpoch: { medianMs: round(afterWrite[7]), maxMs: round(afterWrite[14]) },
    sortByStarted: listStarted,
    oneExperiment500RunsColdMs: oneExperimentCold,
    targetMs: 50,
  },
  compare: { runs: ids.length, epochs: 100, rowsPerRun: 100 * 55, curves, differingParams: compare, allParams: compareAll, targetMs: 50 },
  getRun100Epochs: runDetail,
  dbBytes: { inserts: fs.statSync(insertDb).size, list: fs.statSync(listDb).size },
  pass: inserts.rowsPerSecond >= 200_000 && listBest.medianMs < 50 && compare.medianMs < 50,
};
fs.mkdirSync(path.join(root, 'bench', 'results'), { recursive: true });
fs.writeFileSync(path.join(root, 'bench', 'results', 'store.json'), JSON.stringify(result, null, 2) + '\n');
fs.rmSync(dir, { recursive: true, force: true });
console.log(JSON.stringify(result, null, 2));
