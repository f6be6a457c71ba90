/**
 * Child process for crash.test.ts: opens the log, creates a run and logs epochs in a loop,
 * one transaction per epoch. At epoch `hangAt` it inserts `spillRows` rows (enough for
 * SQLite to spill uncommitted pages into the WAL), prints "inside <epoch>" from *within*
 * the transaction and blocks there until the parent SIGKILLs it.
 *
 * Usage: node --import tsx crash-child.ts '{"dbPath":...,"stepsPerEpoch":50,"hangAt":4,"spillRows":100000}'
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { openStore, type MetricRow } from '../../../src/main/store';

const args = JSON.parse(process.argv[2]) as { dbPath: string; stepsPerEpoch: number; hangAt: number; spillRows: number };
const say = (line: string) => process.stdout.write(`${line}\n`); // pipes are synchronous on Linux

function epochRows(epoch: number, steps: number): MetricRow[] {
  const rows: MetricRow[] = [];
  for (let s = 0; s < steps; s++) rows.push({ key: 'batch_loss', step: epoch * steps + s, epoch, value: 1 / (1 + epoch + s / steps) });
  const last = epoch * steps + steps - 1;
  rows.push({ key: 'val_loss', step: last, epoch, value: 1 / (1 + epoch) });
  rows.push({ key: 'val_accuracy', step: last, epoch, value: 1 - 1 / (2 + epoch) });
  return rows;
}

/** Rows whose element `at` blocks when read: the store reads rows inside its transaction. */
function hangingRows(rows: MetricRow[], at: number, epoch: number): MetricRow[] {
  Object.defineProperty(rows, at, {
    get() {
      say(`inside ${epoch}`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
      throw new Error('the parent should have killed this process');
    },
  });
  return rows;
}

const store = openStore(args.dbPath, { appVersion: '0.1.0-crash' });
const run = store.createRun({
  name: 'crash me',
  config: { epochs: 100, optimizer: { name: 'sgd', lr: 0.1 } },
  snapshotId: 'snap-crash',
  backbone: 'mobilenet_v2_035',
  backend: 'wasm',
  seed: 1,
  strategy: 'head',
});
say(`run ${run.id} pid ${process.pid}`);
for (let epoch = 0; ; epoch++) {
  if (epoch === args.hangAt) {
    const rows = epochRows(epoch, args.stepsPerEpoch + args.spillRows);
    store.logMetrics(run.id, hangingRows(rows, args.spillRows, epoch));
  }
  store.logMetrics(run.id, epochRows(epoch, args.stepsPerEpoch));
  store.setCheckpoint(run.id, `checkpoints/epoch-${epoch}`, epoch);
  say(`committed ${epoch}`);
  await sleep(5);
}
