/** Shared by the store tests: a fresh log in a temp dir, a context, and a run factory. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openStore, type Store } from '../../../src/main/store';
import { appPaths, type AppContext } from '../../../src/main/services/context';
import { EventHub } from '../../../src/main/services/events';

export function tempDir(label = 'store'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `finetune-${label}-`));
}

export function freshStore(dir = tempDir()): { store: Store; file: string; dir: string } {
  const file = path.join(dir, 'finetune.sqlite');
  return { store: openStore(file, { appVersion: '0.1.0-test' }), file, dir };
}

export function testContext(home: string): AppContext {
  return { paths: appPaths(home), mirrors: [], events: new EventHub(), appVersion: '0.1.0-test', electronVersion: null };
}

export const baseConfig = {
  backbone: 'mobilenet_v2_035',
  epochs: 10,
  batchSize: 16,
  optimizer: { name: 'adam', lr: 0.001, betas: [0.9, 0.999] },
  augment: { flip: true, rotate: 10 },
};

/** A run with one value per key per epoch: val_accuracy rising, val_loss falling. */
export function runWithEpochs(
  store: Store,
  opts: { epochs: number; config?: object; snapshotId?: string; experiment?: string; name?: string; offset?: number },
): string {
  const run = store.createRun({
    name: opts.name,
    experiment: opts.experiment,
    config: opts.config ?? baseConfig,
    snapshotId: opts.snapshotId ?? 'snap-a',
    backbone: 'mobilenet_v2_035',
    backend: 'wasm',
    seed: 42,
    strategy: 'head',
  });
  const off = opts.offset ?? 0;
  for (let e = 0; e < opts.epochs; e++) {
    store.logMetrics(run.id, [
      { key: 'train_loss', step: e * 10 + 5, epoch: e, value: 2 - e * 0.1 },
      { key: 'train_loss', step: e * 10 + 9, epoch: e, value: 1.9 - e * 0.1 },
      { key: 'val_loss', step: e * 10 + 9, epoch: e, value: 1.5 - e * 0.1 + off },
      { key: 'val_accuracy', step: e * 10 + 9, epoch: e, value: 0.5 + e * 0.04 + off },
    ]);
  }
  return run.id;
}
