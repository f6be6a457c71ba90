import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkpointExists, loadCheckpoint, saveCheckpoint, type CheckpointData } from '../../../src/main/engine/checkpoint';
import { AppError } from '../../../src/shared/errors';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'engine-ckpt-'));
const td = (values: number[], shape = [values.length]) => ({ shape, values: Float32Array.from(values) });

function sample(epoch: number): CheckpointData<{ epoch: number; note: string }> {
  return {
    net: new Map([
      ['block_1_conv/kernel', td([1, 2, 3, 4], [2, 2])],
      ['block_1_bn/moving_mean', td([0.5, -0.5])],
    ]),
    head: new Map([['head_dense/kernel', td([epoch, 7])]]),
    optimizer: { name: 'adamw', slots: { 'head/0': { step: 12, m: td([0.1, 0.2]), v: td([0.01, 0.02]) }, 'block_1/0': { step: 3, buf: td([1]) } } },
    meta: { epoch, note: 'ünïcode ok' },
  };
}

test('save + load round-trips weights, optimizer state and meta', () => {
  const dir = path.join(tmp(), 'last');
  saveCheckpoint(dir, sample(3));
  assert.ok(checkpointExists(dir));
  const c = loadCheckpoint<{ epoch: number; note: string }>(dir);
  assert.deepEqual(c.meta, { epoch: 3, note: 'ünïcode ok' });
  assert.deepEqual(c.net.get('block_1_conv/kernel'), td([1, 2, 3, 4], [2, 2]));
  assert.deepEqual(c.head.get('head_dense/kernel'), td([3, 7]));
  assert.equal(c.optimizer!.slots['head/0'].step, 12);
  assert.deepEqual(c.optimizer!.slots['head/0'].v, td([0.01, 0.02]));
  assert.deepEqual(c.optimizer!.slots['block_1/0'].buf, td([1]));
  assert.equal(c.optimizer!.slots['block_1/0'].m, undefined);
});

test('saving over a checkpoint replaces it atomically; an interrupted swap is recovered from .old', () => {
  const dir = path.join(tmp(), 'best');
  saveCheckpoint(dir, sample(1));
  saveCheckpoint(dir, sample(2));
  assert.equal(loadCheckpoint<{ epoch: number }>(dir).meta.epoch, 2);
  assert.deepEqual(fs.readdirSync(path.dirname(dir)), ['best'], 'no temp or .old folders left behind');
  // A crash between "rename old away" and "rename new in" leaves only `.old`.
  fs.renameSync(dir, `${dir}.old`);
  assert.ok(checkpointExists(dir));
  assert.equal(loadCheckpoint<{ epoch: number }>(dir).meta.epoch, 2);
  // The next save cleans up.
  saveCheckpoint(dir, sample(3));
  assert.deepEqual(fs.readdirSync(path.dirname(dir)), ['best']);
});

test('missing or truncated checkpoints are AppErrors that say what to do', () => {
  const dir = path.join(tmp(), 'nope');
  assert.throws(() => loadCheckpoint(dir), (e: unknown) => e instanceof AppError && e.code === 'checkpoint-missing' && /manifest\.json not found/.test(e.message));
  const d2 = path.join(tmp(), 'cut');
  saveCheckpoint(d2, sample(1));
  const bin = path.join(d2, 'weights.bin');
  fs.truncateSync(bin, 8);
  assert.throws(() => loadCheckpoint(d2), (e: unknown) => e instanceof AppError && e.code === 'checkpoint-corrupt');
});
