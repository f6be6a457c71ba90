/**
 * Import: scan the folder, read and hash every file, decode it once with sharp into the
 * decode cache (which also proves it is a readable image), split what isn't pre-split
 * (stratified, seeded, identical files kept together), and write an immutable snapshot.
 * Source files are only ever read.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { AppError, CancelledError } from '../../shared/errors';
import { derivedRng } from '../engine/rng';
import { scanDataset, type FoundFile, type Split } from './scan';
import { DECODE_SETTINGS, decodeSquare, probeImage } from './decode';
import { DecodeCache, mapPool } from './cache';
import { buildReport, flatness, placeholderReason, type HealthReport, type ProbedFile } from './health';
import { saveSnapshot, snapshotId, type DatasetSnapshot, type SnapshotFile } from './snapshot';

export interface ImportOptions {
  path: string;
  name?: string;
  /** Fractions for folders that are not pre-split. */
  val?: number;
  test?: number;
  seed?: number;
  datasetsDir: string;
  decodeCacheDir: string;
  /** Side of the decode cache filled while importing (256 = 224 / 0.875, the default backbone's). */
  cacheSide?: number;
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface ImportResult {
  snapshot: DatasetSnapshot;
  report: HealthReport;
}

/** Why a file could not be decoded, in words a user can act on. */
async function describeDecodeError(err: unknown, bytes: Buffer): Promise<string> {
  if (bytes.length === 0) return 'empty file (0 bytes)';
  const msg = ((err as Error).message ?? String(err)).split('\n')[0].slice(0, 120);
  if (/unsupported image format|Input buffer contains unsupported/i.test(msg)) return 'not an image (format not recognised)';
  if (/premature end|truncat|end of file|corrupt|Invalid|VipsJpeg|gifload|pngload|bad/i.test(msg)) return `truncated or corrupt image (${msg})`;
  // libvips keeps one error buffer for all threads, so with several decodes in flight a message
  // can be lost ("Unknown error"). The header alone tells the two usual cases apart.
  const format = await probeImage(bytes).then(
    (m) => m.format,
    () => null,
  );
  if (!format) return 'not an image (format not recognised)';
  return `truncated or corrupt ${format} image${msg && !/unknown error/i.test(msg) ? ` (${msg})` : ''}`;
}

/** Stratified, seeded split of the files without one; identical files stay together. */
export function assignSplits(files: (FoundFile & { hash: string })[], val: number, test: number, seed: number): { splits: Split[]; tooFew: string[] } {
  const splits = files.map((f) => f.split ?? ('train' as Split));
  const tooFew: string[] = [];
  const byClass = new Map<string, number[]>();
  files.forEach((f, i) => {
    if (!f.split) byClass.set(f.label, [...(byClass.get(f.label) ?? []), i]);
  });
  for (const [label, idx] of [...byClass].sort(([a], [b]) => (a < b ? -1 : 1))) {
    // Units are distinct contents; order them by hash so the split doesn't depend on file names or listing order.
    const units = new Map<string, number[]>();
    for (const i of idx) units.set(files[i].hash, [...(units.get(files[i].hash) ?? []), i]);
    const keys = [...units.keys()].sort();
    derivedRng(seed, `split:${label}`).shuffle(keys);
    const n = keys.length;
    let nTest = test > 0 ? Math.max(1, Math.round(n * test)) : 0;
    let nVal = val > 0 ? Math.max(1, Math.round(n * val)) : 0;
    if (n - nTest - nVal < 1) {
      tooFew.push(label);
      nTest = 0;
      nVal = 0;
    }
    keys.forEach((k, j) => {
      const s: Split = j < nTest ? 'test' : j < nTest + nVal ? 'val' : 'train';
      for (const i of units.get(k)!) splits[i] = s;
    });
  }
  return { splits, tooFew };
}

/** Import a folder (or CSV) into a snapshot with its health report. */
export async function importDataset(o: ImportOptions): Promise<ImportResult> {
  const val = o.val ?? 0.2;
  const test = o.test ?? 0;
  const seed = o.seed ?? 0;
  if (!(val >= 0 && test >= 0 && val + test < 1)) throw new AppError('bad_arguments', `Split fractions must be >= 0 and leave room for training: got val ${val}, test ${test}.`);
  const scan = scanDataset(o.path);
  const cache = new DecodeCache(o.decodeCacheDir, o.cacheSide ?? 256);
  const total = scan.files.length;
  let done = 0;
  const skipped: { path: string; reason: string }[] = scan.unreadable.map((u) => ({ path: path.relative(scan.root, u.path) || u.path, reason: u.reason }));
  const suspect: { path: string; reason: string }[] = [];
  const probe = async (f: FoundFile) => {
    let bytes: Buffer;
    try {
      // Read synchronously: an async read takes a libuv thread, and those are all busy decoding,
      // so the next file would wait for a decode to end before its own could start.
      bytes = fs.readFileSync(f.abs);
    } catch (err) {
      skipped.push({ path: f.rel, reason: `cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})` });
      return null;
    }
    const hash = crypto.createHash('sha256').update(bytes).digest('hex');
    try {
      const cached = cache.get(hash);
      const { pixels, info } = cached ? { pixels: cached, info: await probeImage(bytes) } : await decodeSquare(bytes, cache.side);
      if (!cached) cache.put(hash, pixels);
      const reason = placeholderReason(f.rel, flatness(pixels));
      if (reason) suspect.push({ path: f.rel, reason });
      return { ...f, hash, width: info.width, height: info.height, format: info.format };
    } catch (err) {
      skipped.push({ path: f.rel, reason: await describeDecodeError(err, bytes) });
      return null;
    }
  };
  const probed = await mapPool(
    scan.files,
    o.concurrency ?? DECODE_SETTINGS.pool,
    async (f) => {
      try {
        return await probe(f);
      } finally {
        // Counted once the file is fully processed, so done === total means decoding is over.
        o.onProgress?.(++done, total);
      }
    },
    o.signal,
  );
  if (o.signal?.aborted) throw new CancelledError('import');
  const good = probed.filter((p): p is NonNullable<typeof p> => p !== null);
  const classes = [...new Set(scan.files.map((f) => f.label))].sort();
  const emptyAfterSkip = classes.filter((c) => !good.some((g) => g.label === c));
  if (emptyAfterSkip.length) {
    throw new AppError(
      'empty_class',
      `Class ${emptyAfterSkip.map((c) => `"${c}"`).join(', ')} has no readable images${skipped.length ? ` (${skipped.length} file(s) skipped: ${skipped.slice(0, 3).map((s) => `${s.path}: ${s.reason}`).join('; ')})` : ''}. Add images to it or remove the folder.`,
    );
  }
  const { splits, tooFew } = assignSplits(good, val, test, seed);
  const labelIndex = new Map(classes.map((c, i) => [c, i]));
  const files: SnapshotFile[] = good
    .map((g, i) => ({ rel: g.rel, hash: g.hash, label: labelIndex.get(g.label)!, split: splits[i], width: g.width, height: g.height, format: g.format }))
    .sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  const id = snapshotId(classes, files);
  const name = o.name ?? path.basename(scan.root);
  const probedFiles: ProbedFile[] = files.map((f) => ({ rel: f.rel, label: classes[f.label], split: f.split, hash: f.hash, width: f.width, height: f.height }));
  skipped.sort((a, b) => (a.path < b.path ? -1 : 1));
  suspect.sort((a, b) => (a.path < b.path ? -1 : 1));
  const report = buildReport({ snapshotId: id, name, root: scan.root, layout: scan.layout, classes, files: probedFiles, skipped, suspect, tooFewToSplit: tooFew, emptyClasses: scan.emptyClasses });
  const fresh: DatasetSnapshot = { version: 1, id, name, root: scan.root, layout: scan.layout, createdAt: Date.now(), classes, files, options: { val, test, seed }, report };
  // An unchanged folder imported again returns the snapshot stored the first time.
  const snapshot = saveSnapshot(o.datasetsDir, fresh);
  return { snapshot, report };
}

