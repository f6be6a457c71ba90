/**
 * Nothing lost on a crash, for real: `finetune train` runs in a child process and is
 * SIGKILLed in the middle of an epoch once at least one epoch is committed. The log must
 * open cleanly with every committed epoch, the run must show as interrupted, and
 * `train:continue` must finish it from its last checkpoint under the same run id.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { boot } from '../../../src/main/boot';
import { modelsMirror, repoRoot, tempDir } from '../../helpers/paths';
import { hymenopteraSubset } from '../../helpers/data';

function committedEpochs(dbFile: string): number[] {
  try {
    const db = new Database(dbFile, { readonly: true, fileMustExist: true });
    try {
      const rows = db.prepare("SELECT DISTINCT epoch FROM metrics m JOIN runs r ON r.seq = m.run_seq WHERE m.key = 'val_accuracy' ORDER BY epoch").all() as { epoch: number }[];
      return rows.map((r) => r.epoch);
    } finally {
      db.close();
    }
  } catch {
    return [];
  }
}

test('SIGKILL mid-epoch: the log stays consistent, the run is interrupted, and it resumes into the same id', { timeout: 240_000 }, async (t) => {
  const home = tempDir('finetune-crash-home-');
  const data = hymenopteraSubset({ train: 24, val: 12 });
  const dbFile = path.join(home, 'finetune.sqlite');
  const EPOCHS = 5;
  // Without the feature cache every epoch runs the backbone on its photos, so the epochs after
  // the first take long enough to be killed in (with cached features the four left took less
  // than the delay below and the run finished before the kill).
  const config = path.join(tempDir('finetune-crash-config-'), 'config.json');
  fs.writeFileSync(config, JSON.stringify({ featureCache: { enabled: false } }));
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(repoRoot, 'src/cli/run.ts'), '--home', home, '--models-mirror', modelsMirror, 'train', '--data', data, '--strategy', 'head', '--epochs', String(EPOCHS), '--batch-size', '4', '--config', config, '--json'],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  // Whatever happens to the test (a failed assertion, its timeout), the child does not outlive it.
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  // Wait until epoch 1 is committed, let epoch 2 get under way, then kill.
  const deadline = Date.now() + 180_000;
  let killedAfter: number[] = [];
  while (Date.now() < deadline) {
    const epochs = committedEpochs(dbFile);
    if (epochs.length >= 1) {
      await new Promise((r) => setTimeout(r, Number(process.env.CRASH_DELAY_MS ?? 100)));
      child.kill('SIGKILL');
      killedAfter = epochs;
      break;
    }
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  // No committed epoch by the deadline: stop the child, and the assertion below says why.
  if (!killedAfter.length && child.exitCode === null) child.kill('SIGKILL');
  await exited;
  assert.ok(killedAfter.length >= 1, `the child was killed after a committed epoch (output: ${output.slice(-2000)})`);
  assert.ok(killedAfter.length < EPOCHS, 'killed before the end');
  assert.ok(committedEpochs(dbFile).length < EPOCHS, `the kill came before the last epoch was committed (output: ${output.slice(-1000)})`);

  const app = await boot({ home, mirrors: [modelsMirror] });
  try {
    assert.equal(app.store.integrityCheck(), 'ok');
    const [run] = app.store.listRuns({});
    assert.equal(run.status, 'interrupted');
    const before = app.store.getRun(run.id);
    const committed = before.epochs.val_accuracy.map((p) => p.epoch);
    assert.ok(committed.length >= killedAfter.length, 'every epoch committed before the kill is there');
    assert.deepEqual(committed, committed.map((_, i) => i + 1), 'epochs are whole and in order');
    assert.ok(fs.existsSync(path.join(home, 'runs', run.id, 'checkpoints', 'last')), 'a last checkpoint is on disk');

    const { runId } = await app.call('train:continue', { runId: run.id });
    assert.equal(runId, run.id, 'same run id');
    const result = await app.runs.wait(runId);
    assert.equal(result.status, 'finished');
    const after = app.store.getRun(run.id);
    assert.equal(after.status, 'finished');
    assert.deepEqual(after.epochs.val_accuracy.map((p) => p.epoch), [1, 2, 3, 4, 5], 'each epoch exactly once');
    assert.equal(app.store.integrityCheck(), 'ok');
  } finally {
    await app.close();
  }
});

test('a kill between the checkpoint write and the epoch commit: continue restores the epoch from the checkpoint', { timeout: 240_000 }, async () => {
  const home = tempDir('finetune-crash-gap-home-');
  const app = await boot({ home, mirrors: [modelsMirror] });
  try {
    const { snapshotId } = await app.call('datasets:import', { path: hymenopteraSubset({ train: 16, val: 8 }) });
    const { runId } = await app.call('train:start', { snapshotId, strategy: 'head', config: { epochs: 2, batchSize: 8 } });
    await app.runs.wait(runId);
    const full = app.store.getRun(runId).epochs;
    // What such a kill leaves: the checkpoint says 2 epochs are done, the log has only epoch 1.
    app.store.setStatus(runId, 'interrupted');
    app.store.resumeRun(runId, { discardAfterEpoch: 1 });
    app.store.setStatus(runId, 'interrupted');
    assert.deepEqual(app.store.getRun(runId).epochs.val_accuracy.map((p) => p.epoch), [1]);

    await app.call('train:continue', { runId });
    const result = await app.runs.wait(runId);
    assert.equal(result.status, 'finished');
    const after = app.store.getRun(runId).epochs;
    assert.deepEqual(after.val_accuracy.map((p) => p.epoch), [1, 2], 'each epoch exactly once');
    for (const key of ['train_loss', 'val_loss', 'val_accuracy', 'epoch_seconds'] as const) {
      assert.deepEqual(after[key].map((p) => [p.epoch, p.step, p.value]), full[key].map((p) => [p.epoch, p.step, p.value]), `${key} restored as it was logged`);
    }
    assert.equal(app.store.integrityCheck(), 'ok');
  } finally {
    await app.close();
  }
});
