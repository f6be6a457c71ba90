import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { openStore } from '../../../src/main/store';
import { tempDir } from './helpers';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../../..');

interface Killed {
  runId: string;
  committed: number[];
  signal: NodeJS.Signals | null;
  walBytesAtKill: number;
}

/** Run crash-child.ts until it reports being inside the epoch-`hangAt` transaction, then SIGKILL it. */
function runAndKill(dbPath: string, args: { stepsPerEpoch: number; hangAt: number; spillRows: number }): Promise<Killed> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'crash-child.ts'), JSON.stringify({ dbPath, ...args })], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const state: Killed = { runId: '', committed: [], signal: null, walBytesAtKill: 0 };
    let killed = false;
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      const [word, value] = line.split(' ');
      if (word === 'run') state.runId = value;
      if (word === 'committed') state.committed.push(Number(value));
      if (word === 'inside' && !killed) {
        killed = true;
        state.walBytesAtKill = fs.statSync(`${dbPath}-wal`).size;
        child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      state.signal = signal;
      if (!killed) reject(new Error(`crash-child exited (code ${code}) before it could be killed:\n${stderr}`));
      else resolve(state);
    });
  });
}

test('SIGKILL mid-transaction: the log opens clean, committed epochs are whole, the run is interrupted and resumes', async () => {
  const dir = tempDir('crash');
  const dbPath = path.join(dir, 'finetune.sqlite');
  const steps = 50;
  const hangAt = 4;
  const killed = await runAndKill(dbPath, { stepsPerEpoch: steps, hangAt, spillRows: 300_000 });
  assert.equal(killed.signal, 'SIGKILL');
  assert.deepEqual(killed.committed, [0, 1, 2, 3]);
  // The half-written epoch was big enough to spill uncommitted pages into the WAL.
  assert.ok(killed.walBytesAtKill > 1_000_000, `WAL was ${killed.walBytesAtKill} bytes at the kill`);

  const store = openStore(dbPath, { appVersion: '0.1.0-test' });
  assert.equal(store.integrityCheck(), 'ok');
  let run = store.getRun(killed.runId);
  assert.equal(run.status, 'running', 'nobody has looked yet');

  // Every committed epoch is there in full; nothing of the killed one.
  const series = store.getMetrics(killed.runId).series;
  assert.equal(series.batch_loss.length, steps * hangAt);
  assert.deepEqual([...new Set(series.batch_loss.map((p) => p.epoch))], [0, 1, 2, 3]);
  assert.deepEqual(series.val_loss.map((p) => p.epoch), [0, 1, 2, 3]);
  assert.equal(run.metrics.batch_loss.count, steps * hangAt, 'the summary cache agrees with the rows');
  assert.equal(run.lastEpoch, 3);
  assert.equal(run.lastCheckpoint, 'checkpoints/epoch-3');
  assert.equal(run.lastCheckpointEpoch, 3);

  // A run owned by this live process is left alone; the dead child's run is interrupted.
  const mine = store.createRun({ config: {}, snapshotId: null, backbone: 'b', backend: 'wasm', seed: 1, strategy: 'head' });
  assert.equal(store.markInterruptedRuns(), 1);
  assert.equal(store.getRunRecord(mine.id).status, 'running');
  run = store.getRun(killed.runId);
  assert.equal(run.status, 'interrupted');
  assert.match(run.error ?? '', /ended without finishing/);
  assert.ok(run.endedAt !== null);
  assert.equal(store.markInterruptedRuns(), 0, 'idempotent');

  // Resume into the same id from the checkpoint, and keep logging.
  const resumed = store.resumeRun(killed.runId, { discardAfterEpoch: run.lastCheckpointEpoch! });
  assert.equal(resumed.id, killed.runId);
  assert.equal(resumed.status, 'running');
  assert.equal(resumed.error, null);
  for (let epoch = hangAt; epoch < hangAt + 2; epoch++) {
    store.logMetrics(resumed.id, [
      { key: 'batch_loss', step: epoch * steps, epoch, value: 0.1 },
      { key: 'val_loss', step: epoch * steps + steps - 1, epoch, value: 0.15 },
    ]);
  }
  store.setStatus(resumed.id, 'finished');
  const after = store.getRun(killed.runId);
  assert.equal(after.status, 'finished');
  assert.deepEqual(after.epochs.val_loss.map((p) => p.epoch), [0, 1, 2, 3, 4, 5]);
  assert.equal(after.metrics.val_loss.final, 0.15);
  assert.equal(store.listRuns().length, 2, 'no new run was created');
  assert.equal(store.integrityCheck(), 'ok');
  store.close();
});

test('markInterruptedRuns also catches a run stamped by another boot', () => {
  const dir = tempDir('boot');
  const dbPath = path.join(dir, 'finetune.sqlite');
  const store = openStore(dbPath, { appVersion: '0.1.0-test' });
  const run = store.createRun({ config: {}, snapshotId: null, backbone: 'b', backend: 'wasm', seed: 1, strategy: 'head' });
  store.close();
  // Same pid (ours, alive) but recorded under a different boot: the pid was reused after a reboot.
  const raw = new Database(dbPath);
  raw.prepare("UPDATE runs SET owner_boot = 'another-boot' WHERE id = ?").run(run.id);
  raw.close();
  const again = openStore(dbPath, { appVersion: '0.1.0-test' });
  assert.equal(again.markInterruptedRuns(), 1);
  assert.equal(again.getRunRecord(run.id).status, 'interrupted');
  again.close();
});
