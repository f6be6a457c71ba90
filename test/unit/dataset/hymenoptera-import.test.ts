import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { importDataset } from '../../../src/main/dataset/import';
import { listSnapshots, loadSnapshot } from '../../../src/main/dataset/snapshot';
import { copyHymenopteraSubset, hymenopteraDir, realJpeg, tempDir, tempHome, treeFingerprint } from './fixtures';

const countFiles = (sub: string) => fs.readdirSync(path.join(hymenopteraDir, sub)).length;

test('hymenoptera: pre-split import with counts, the GIF placeholder flagged, same id twice, written once, source untouched', async () => {
  const before = treeFingerprint(hymenopteraDir);
  const home = tempHome();
  const first = await importDataset({ path: hymenopteraDir, datasetsDir: home.datasetsDir, decodeCacheDir: home.decodeCacheDir });
  const r = first.report;
  assert.equal(r.layout, 'pre-split');
  assert.deepEqual(r.classes, ['ants', 'bees']);
  // Every file counted where it lies (.jpg, .jpeg and the GIF placeholder, which decodes, so it is kept but flagged).
  const expected = {
    train: { ants: countFiles('train/ants'), bees: countFiles('train/bees') },
    val: { ants: countFiles('val/ants'), bees: countFiles('val/bees') },
  };
  assert.deepEqual(r.counts, expected);
  assert.equal(r.total, expected.train.ants + expected.train.bees + expected.val.ants + expected.val.bees);
  assert.deepEqual(r.skipped, []);
  assert.deepEqual(r.suspect.map((s) => s.path), ['train/ants/imageNotFound.gif']);
  assert.match(r.suspect[0].reason, /placeholder/);
  assert.deepEqual(r.leaks, []);
  assert.deepEqual(r.tooFewToSplit, []);
  assert.ok(r.imbalanceRatio >= 1 && r.imbalanceRatio < 1.2, `imbalance ${r.imbalanceRatio}`);
  assert.equal(r.usable, true);
  assert.match(r.snapshotId, /^ds-[0-9a-f]{16}$/);

  // The snapshot lists every file with its hash, label index and the split it was given.
  const snap = first.snapshot;
  assert.equal(snap.id, r.snapshotId);
  assert.equal(snap.root, hymenopteraDir);
  const gif = snap.files.find((f) => f.rel === 'train/ants/imageNotFound.gif');
  assert.ok(gif && gif.split === 'train' && snap.classes[gif.label] === 'ants' && gif.format === 'gif');
  assert.ok(snap.files.every((f) => f.split === f.rel.split('/')[0] && snap.classes[f.label] === f.rel.split('/')[1]));
  assert.ok(snap.files.every((f) => /^[0-9a-f]{64}$/.test(f.hash) && f.width > 0 && f.height > 0));

  const files = fs.readdirSync(home.datasetsDir);
  assert.deepEqual(files, [`${r.snapshotId}.json`]);
  const stored = path.join(home.datasetsDir, files[0]);
  const storedBytes = fs.readFileSync(stored);
  const storedMtime = fs.statSync(stored).mtimeMs;

  // Second import (warm decode cache): same id, the snapshot file is neither rewritten nor duplicated.
  const second = await importDataset({ path: hymenopteraDir, datasetsDir: home.datasetsDir, decodeCacheDir: home.decodeCacheDir });
  assert.equal(second.report.snapshotId, r.snapshotId);
  assert.deepEqual(second.report.counts, r.counts);
  assert.deepEqual(fs.readdirSync(home.datasetsDir), files);
  assert.equal(fs.statSync(stored).mtimeMs, storedMtime);
  assert.deepEqual(fs.readFileSync(stored), storedBytes);
  assert.equal(second.snapshot.createdAt, first.snapshot.createdAt, 'the stored snapshot is returned');
  assert.deepEqual(loadSnapshot(home.datasetsDir, r.snapshotId).files, snap.files);

  assert.deepEqual(treeFingerprint(hymenopteraDir), before, 'the source folder is only read');
});

test('a changed folder gives a new snapshot id while the old snapshot still loads', async () => {
  const src = path.join(tempDir(), 'hymenoptera subset');
  copyHymenopteraSubset(src, { train: 4, val: 2 });
  const home = tempHome();
  const opts = { path: src, datasetsDir: home.datasetsDir, decodeCacheDir: home.decodeCacheDir };
  const a = await importDataset(opts);
  assert.deepEqual(a.report.counts, { train: { ants: 4, bees: 4 }, val: { ants: 2, bees: 2 } });
  assert.equal((await importDataset(opts)).report.snapshotId, a.report.snapshotId);

  fs.writeFileSync(path.join(src, 'train/bees/new bee.jpg'), realJpeg('bees', 10));
  const b = await importDataset(opts);
  assert.notEqual(b.report.snapshotId, a.report.snapshotId);
  assert.equal(b.report.counts.train.bees, 5);

  const gone = path.join(src, 'val/ants', fs.readdirSync(path.join(src, 'val/ants'))[0]);
  fs.rmSync(gone);
  const c = await importDataset(opts);
  assert.equal(c.report.counts.val.ants, 1);
  assert.equal(new Set([a.report.snapshotId, b.report.snapshotId, c.report.snapshotId]).size, 3);

  // Same names, different bytes: content changes the id too.
  fs.writeFileSync(path.join(src, 'train/bees/new bee.jpg'), realJpeg('bees', 11));
  const d = await importDataset(opts);
  assert.notEqual(d.report.snapshotId, c.report.snapshotId);

  const old = loadSnapshot(home.datasetsDir, a.report.snapshotId);
  assert.equal(old.files.length, 12);
  assert.ok(old.files.some((f) => f.rel === path.relative(src, gone)));
  assert.equal(listSnapshots(home.datasetsDir).length, 4);
  assert.throws(() => loadSnapshot(home.datasetsDir, 'ds-0000000000000000'), (e: Error & { code?: string }) => e.code === 'not_found' && /Import the folder again/.test(e.message));
});

test('the same content imported from a moved folder keeps its id and points at the new place', async () => {
  const parent = tempDir();
  const first = path.join(parent, 'photos');
  copyHymenopteraSubset(first, { train: 2, val: 1 });
  const home = tempHome();
  const a = await importDataset({ path: first, datasetsDir: home.datasetsDir, decodeCacheDir: home.decodeCacheDir });
  const moved = path.join(parent, 'photos moved');
  fs.renameSync(first, moved);
  const b = await importDataset({ path: moved, datasetsDir: home.datasetsDir, decodeCacheDir: home.decodeCacheDir });
  assert.equal(b.report.snapshotId, a.report.snapshotId);
  assert.equal(loadSnapshot(home.datasetsDir, a.report.snapshotId).root, moved);
  assert.equal(b.snapshot.root, moved);
});
