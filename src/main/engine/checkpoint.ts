/**
 * Checkpoints: backbone + head weights, optimiser state and where the run was (epoch, batch,
 * global step, lr scale, trainable groups, callback state) in one folder: manifest.json +
 * weights.bin. Written to a sibling temp folder and swapped in with renames, so a crash
 * mid-write leaves the previous checkpoint intact (a leftover `.old` is picked up on load).
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { AppError } from '../../shared/errors';
import type { OptimizerState, TensorData } from './optimizers';

export const CHECKPOINT_VERSION = 1;

export interface CheckpointData<Meta = Record<string, unknown>> {
  /** Backbone weights by Keras name (unfolded). */
  net: Map<string, TensorData>;
  /** Head weights by Keras name. */
  head: Map<string, TensorData>;
  optimizer: OptimizerState | null;
  /** Run position and callback state; plain JSON. */
  meta: Meta;
}

interface TensorEntry {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32';
  offset: number;
  length: number;
}

interface Manifest {
  version: number;
  optimizer: { name: string; slots: Record<string, { step: number; m?: string; v?: string; buf?: string }> } | null;
  tensors: TensorEntry[];
  meta: unknown;
}

/** Copy tensors to plain data (tensor -> TensorData), e.g. net.getWeights() output; disposes the tensors. */
export function tensorsToData(m: Map<string, tf.Tensor>): Map<string, TensorData> {
  const out = new Map<string, TensorData>();
  for (const [k, t] of m) {
    out.set(k, { shape: t.shape.slice(), values: Float32Array.from(t.dataSync() as ArrayLike<number>) });
    t.dispose();
  }
  return out;
}

/** Plain data -> tensors (caller owns them), e.g. for net.setWeights. */
export function dataToTensors(m: Map<string, TensorData>): Map<string, tf.Tensor> {
  return new Map([...m].map(([k, d]) => [k, tf.tensor(d.values, d.shape, 'float32')]));
}

/** Write a checkpoint folder atomically (replacing one that exists). */
export function saveCheckpoint(dir: string, data: CheckpointData<unknown>): void {
  const parts: Buffer[] = [];
  const tensors: TensorEntry[] = [];
  let offset = 0;
  const add = (name: string, d: TensorData): string => {
    const b = Buffer.from(d.values.buffer, d.values.byteOffset, d.values.byteLength);
    parts.push(b);
    tensors.push({ name, shape: d.shape, dtype: 'float32', offset, length: d.values.length });
    offset += b.byteLength;
    return name;
  };
  for (const [k, d] of data.net) add(`net/${k}`, d);
  for (const [k, d] of data.head) add(`head/${k}`, d);
  let optimizer: Manifest['optimizer'] = null;
  if (data.optimizer) {
    optimizer = { name: data.optimizer.name, slots: {} };
    for (const [key, s] of Object.entries(data.optimizer.slots)) {
      optimizer.slots[key] = {
        step: s.step,
        m: s.m && add(`opt/${key}/m`, s.m),
        v: s.v && add(`opt/${key}/v`, s.v),
        buf: s.buf && add(`opt/${key}/buf`, s.buf),
      };
    }
  }
  const manifest: Manifest = { version: CHECKPOINT_VERSION, optimizer, tensors, meta: data.meta };
  const parent = path.dirname(path.resolve(dir));
  fs.mkdirSync(parent, { recursive: true });
  const tmp = `${path.resolve(dir)}.tmp-${process.pid}-${Date.now()}`;
  fs.mkdirSync(tmp, { recursive: true });
  writeSynced(path.join(tmp, 'weights.bin'), Buffer.concat(parts));
  writeSynced(path.join(tmp, 'manifest.json'), Buffer.from(JSON.stringify(manifest)));
  const old = `${path.resolve(dir)}.old`;
  fs.rmSync(old, { recursive: true, force: true });
  if (fs.existsSync(dir)) fs.renameSync(dir, old);
  fs.renameSync(tmp, dir);
  fs.rmSync(old, { recursive: true, force: true });
}

function writeSynced(file: string, data: Buffer): void {
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** True when `dir` (or its `.old` leftover from an interrupted save) holds a checkpoint. */
export function checkpointExists(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'manifest.json')) || fs.existsSync(path.join(`${path.resolve(dir)}.old`, 'manifest.json'));
}

/** Read a checkpoint folder written by saveCheckpoint. */
export function loadCheckpoint<Meta = Record<string, unknown>>(dir: string): CheckpointData<Meta> {
  let where = dir;
  if (!fs.existsSync(path.join(dir, 'manifest.json'))) {
    const old = `${path.resolve(dir)}.old`;
    if (fs.existsSync(path.join(old, 'manifest.json'))) where = old;
    else throw new AppError('checkpoint-missing', `No checkpoint in "${dir}" (manifest.json not found). Pass the folder of a run's "last" or "best" checkpoint.`);
  }
  const manifest = JSON.parse(fs.readFileSync(path.join(where, 'manifest.json'), 'utf8')) as Manifest;
  if (manifest.version !== CHECKPOINT_VERSION) {
    throw new AppError('checkpoint-version', `Checkpoint "${dir}" has format version ${manifest.version}; this app reads version ${CHECKPOINT_VERSION}. Retrain or use the app version that wrote it.`);
  }
  const bin = fs.readFileSync(path.join(where, 'weights.bin'));
  const byName = new Map<string, TensorData>();
  for (const t of manifest.tensors) {
    const bytes = bin.subarray(t.offset, t.offset + t.length * 4);
    if (bytes.byteLength !== t.length * 4) throw new AppError('checkpoint-corrupt', `Checkpoint "${dir}" is truncated (tensor ${t.name}). Delete it and resume from another checkpoint.`);
    const values = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    byName.set(t.name, { shape: t.shape, values });
  }
  const strip = (prefix: string) => new Map([...byName].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
  let optimizer: OptimizerState | null = null;
  if (manifest.optimizer) {
    optimizer = { name: manifest.optimizer.name, slots: {} };
    for (const [key, s] of Object.entries(manifest.optimizer.slots)) {
      optimizer.slots[key] = { step: s.step, m: s.m ? byName.get(s.m) : undefined, v: s.v ? byName.get(s.v) : undefined, buf: s.buf ? byName.get(s.buf) : undefined };
    }
  }
  return { net: strip('net/'), head: strip('head/'), optimizer, meta: manifest.meta as Meta };
}
