/**
 * Dataset snapshots: the exact list of files (content hashes, labels, split) a run trained
 * on, stored once as immutable JSON under the home folder. The id is a hash of that list,
 * so importing an unchanged folder again gives the same id, and a changed folder a new one
 * while the old snapshot stays readable.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { AppError } from '../../shared/errors';
import type { Layout, Split } from './scan';
import type { HealthReport } from './health';

export interface SnapshotFile {
  /** Relative to the snapshot root, POSIX separators. */
  rel: string;
  hash: string;
  /** Index into `classes`. */
  label: number;
  split: Split;
  width: number;
  height: number;
  format: string;
}

export interface DatasetSnapshot {
  version: 1;
  id: string;
  name: string;
  root: string;
  layout: Layout;
  createdAt: number;
  classes: string[];
  files: SnapshotFile[];
  options: { val: number; test: number; seed: number };
  report: HealthReport;
}

/** The id: a hash of classes and of every file's path, content hash, label and split. */
export function snapshotId(classes: string[], files: SnapshotFile[]): string {
  const h = crypto.createHash('sha256');
  h.update(JSON.stringify(classes));
  for (const f of files) h.update(`\n${f.rel}\t${f.hash}\t${f.label}\t${f.split}`);
  return `ds-${h.digest('hex').slice(0, 16)}`;
}

export function snapshotPath(datasetsDir: string, id: string): string {
  if (!/^ds-[0-9a-f]{16}$/.test(id)) throw new AppError('bad_arguments', `"${id}" is not a dataset snapshot id (they look like ds-0123456789abcdef).`);
  return path.join(datasetsDir, `${id}.json`);
}

function writeSnapshot(file: string, snap: DatasetSnapshot): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(snap));
  fs.renameSync(tmp, file);
}

/**
 * Write a snapshot unless one with its id exists (snapshots are immutable), and return the
 * stored one. The id covers content, not location: when the same content is imported from
 * a new place because the stored root is gone (the folder was moved), only the root is
 * updated, so files that must be decoded again are found.
 */
export function saveSnapshot(datasetsDir: string, snap: DatasetSnapshot): DatasetSnapshot {
  const file = snapshotPath(datasetsDir, snap.id);
  fs.mkdirSync(datasetsDir, { recursive: true });
  if (!fs.existsSync(file)) {
    writeSnapshot(file, snap);
    return snap;
  }
  let stored: DatasetSnapshot;
  try {
    stored = JSON.parse(fs.readFileSync(file, 'utf8')) as DatasetSnapshot;
  } catch {
    writeSnapshot(file, snap); // torn or corrupt: the new one has the same content
    return snap;
  }
  if (stored.root !== snap.root && !fs.existsSync(stored.root) && fs.existsSync(snap.root)) {
    stored = { ...stored, root: snap.root };
    writeSnapshot(file, stored);
  }
  return stored;
}

export function loadSnapshot(datasetsDir: string, id: string): DatasetSnapshot {
  const file = snapshotPath(datasetsDir, id);
  if (!fs.existsSync(file)) {
    throw new AppError('not_found', `Dataset snapshot ${id} is not in ${datasetsDir}. Import the folder again (finetune import DIR), or list the snapshots with the Datasets screen.`);
  }
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as DatasetSnapshot;
  } catch (err) {
    throw new AppError('corrupt_snapshot', `Dataset snapshot file ${file} is unreadable (${(err as Error).message}). Delete it and import the folder again.`);
  }
}

export function listSnapshots(datasetsDir: string): DatasetSnapshot[] {
  if (!fs.existsSync(datasetsDir)) return [];
  const out: DatasetSnapshot[] = [];
  for (const f of fs.readdirSync(datasetsDir)) {
    if (!/^ds-[0-9a-f]{16}\.json$/.test(f)) continue;
    try {
      out.push(JSON.parse(fs.readFileSync(path.join(datasetsDir, f), 'utf8')));
    } catch {
      // an unreadable snapshot is reported when opened, not in the list
    }
  }
  return out.sort((a, b) => b.createdAt - a.createdAt);
}

/** Absolute path of a snapshot file entry. */
export function absPath(snap: Pick<DatasetSnapshot, 'root'>, f: Pick<SnapshotFile, 'rel'>): string {
  return path.join(snap.root, ...f.rel.split('/'));
}
