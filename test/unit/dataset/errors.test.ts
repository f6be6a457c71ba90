import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { AppError } from '../../../src/shared/errors';
import { importDataset } from '../../../src/main/dataset/import';
import { realJpeg, tempDir, tempHome, writeTree } from './fixtures';

async function importError(input: string): Promise<AppError> {
  const home = tempHome();
  try {
    await importDataset({ path: input, datasetsDir: home.datasetsDir, decodeCacheDir: home.decodeCacheDir });
  } catch (err) {
    assert.ok(err instanceof AppError, `an AppError, got ${err}`);
    assert.ok(!fs.existsSync(home.datasetsDir) || fs.readdirSync(home.datasetsDir).length === 0, 'no snapshot written');
    return err;
  }
  assert.fail(`importing ${input} should fail`);
}

test('a path that does not exist', async () => {
  const missing = path.join(tempDir(), 'no such folder');
  const e = await importError(missing);
  assert.equal(e.code, 'not_found');
  assert.ok(e.message.includes(missing), e.message);
  assert.match(e.message, /Check the path/);
});

test('a folder without class folders, and one with only empty class folders', async () => {
  const loose = tempDir();
  writeTree(loose, { 'a.jpg': realJpeg('ants', 0), 'b.jpg': realJpeg('bees', 0) });
  const e = await importError(loose);
  assert.equal(e.code, 'no_classes');
  assert.match(e.message, /has no class folders\. Put each class's images in its own folder/);

  const empty = tempDir();
  fs.mkdirSync(path.join(empty, 'ants'));
  fs.mkdirSync(path.join(empty, 'bees'));
  const e2 = await importError(empty);
  assert.equal(e2.code, 'no_images');
  assert.match(e2.message, /No files found.*Put each class's images in its folder/);
});

test('a single class', async () => {
  const root = tempDir();
  writeTree(root, { 'ants/a.jpg': realJpeg('ants', 0), 'ants/b.jpg': realJpeg('ants', 1) });
  const e = await importError(root);
  assert.equal(e.code, 'single_class');
  assert.match(e.message, /Only one class with images \("ants"\).*add a folder of images for each other class/);
  fs.mkdirSync(path.join(root, 'bees'));
  assert.match((await importError(root)).message, /\("ants"\) in .* \("bees" holds no files\)/);
});

test('a pre-split class with no training images is usable but warned about', async () => {
  const root = tempDir();
  writeTree(root, { 'train/ants/a.jpg': realJpeg('ants', 0), 'train/bees/b.jpg': realJpeg('bees', 0), 'val/ants/a.jpg': realJpeg('ants', 1), 'val/wasps/w.jpg': realJpeg('bees', 1) });
  const home = tempHome();
  const { report } = await importDataset({ path: root, datasetsDir: home.datasetsDir, decodeCacheDir: home.decodeCacheDir });
  assert.deepEqual(report.classes, ['ants', 'bees', 'wasps']);
  assert.equal(report.counts.train.wasps, 0);
  assert.ok(report.warnings.some((w) => /No training images for "wasps"/.test(w)), report.warnings.join('\n'));
});

test('a class whose only files are unreadable', async () => {
  const root = tempDir();
  writeTree(root, { 'ants/a.jpg': realJpeg('ants', 0), 'ants/b.jpg': realJpeg('ants', 1), 'bees/broken.jpg': Buffer.alloc(0), 'bees/readme.jpg': 'text' });
  const e = await importError(root);
  assert.equal(e.code, 'empty_class');
  assert.match(e.message, /Class "bees" has no readable images \(2 file\(s\) skipped: bees\/broken\.jpg: empty file.*\)\. Add images to it or remove the folder\./);
});

test('a file that is not a CSV', async () => {
  const root = tempDir();
  writeTree(root, { 'a.jpg': realJpeg('ants', 0) });
  const e = await importError(path.join(root, 'a.jpg'));
  assert.equal(e.code, 'bad_layout');
  assert.match(e.message, /is a file\. Give a folder of class folders/);
});

test('a CSV with a missing file and bad rows names the lines', async () => {
  const root = tempDir();
  writeTree(root, {
    'img/a.jpg': realJpeg('ants', 0),
    'img/b.jpg': realJpeg('bees', 0),
    'labels.csv': 'path,label\nimg/a.jpg,ants\nimg/b.jpg,bees\nimg/gone.jpg,bees\nimg/a.jpg,\n',
  });
  const e = await importError(path.join(root, 'labels.csv'));
  assert.equal(e.code, 'bad_csv');
  assert.match(e.message, /1 bad row\(s\): line 5: "img\/a\.jpg," \(needs a path and a label\)/);
  assert.match(e.message, /1 missing file\(s\): line 4: img\/gone\.jpg/);
  assert.match(e.message, /Fix or remove those rows \(paths are relative to the CSV's folder\)/);

  writeTree(root, { 'header.csv': 'filename,what\nimg/a.jpg,ants\n' });
  const h = await importError(path.join(root, 'header.csv'));
  assert.equal(h.code, 'bad_csv');
  assert.match(h.message, /header with a path column and a label column/);

  writeTree(root, { 'split.csv': 'path,label,split\nimg/a.jpg,ants,train\nimg/b.jpg,bees,dev\n' });
  assert.match((await importError(path.join(root, 'split.csv'))).message, /line 3: unknown split "dev" \(use train, val or test\)/);
});

test('a CSV with a split column is imported as given (also found in its folder)', async () => {
  const root = path.join(tempDir(), 'csv set');
  const files: Record<string, Buffer | string> = {};
  const rows = ['label,path,split'];
  for (let k = 0; k < 3; k++) {
    files[`pics/ant ${k}.jpg`] = realJpeg('ants', k);
    files[`pics/bee ${k}.jpg`] = realJpeg('bees', k);
    rows.push(`ants,"pics/ant ${k}.jpg",${k === 2 ? 'val' : 'train'}`, `bees,"pics/bee ${k}.jpg",${k === 2 ? 'validation' : 'Train'}`);
  }
  files['labels.csv'] = `\uFEFF${rows.join('\r\n')}\r\n`;
  writeTree(root, files);
  const home = tempHome();
  const direct = await importDataset({ path: path.join(root, 'labels.csv'), datasetsDir: home.datasetsDir, decodeCacheDir: home.decodeCacheDir });
  assert.equal(direct.report.layout, 'csv');
  assert.deepEqual(direct.report.classes, ['ants', 'bees']);
  assert.deepEqual(direct.report.counts, { train: { ants: 2, bees: 2 }, val: { ants: 1, bees: 1 } });
  assert.equal(direct.snapshot.root, root);
  assert.ok(direct.snapshot.files.some((f) => f.rel === 'pics/ant 2.jpg' && f.split === 'val'));
  assert.equal(direct.report.usable, true);

  // The folder holding only the CSV and files (no class folders) is read through its CSV.
  const flat = path.join(tempDir(), 'flat');
  writeTree(flat, { 'a.jpg': realJpeg('ants', 0), 'b.jpg': realJpeg('bees', 0), 'c.jpg': realJpeg('bees', 1), 'list.csv': 'file,class\na.jpg,ants\nb.jpg,bees\nc.jpg,bees\n' });
  const viaFolder = await importDataset({ path: flat, datasetsDir: home.datasetsDir, decodeCacheDir: home.decodeCacheDir, val: 0.5 });
  assert.equal(viaFolder.report.layout, 'csv');
  assert.equal(viaFolder.report.total, 3);
});

test('split fractions that leave nothing for training', async () => {
  const home = tempHome();
  await assert.rejects(importDataset({ path: tempDir(), datasetsDir: home.datasetsDir, decodeCacheDir: home.decodeCacheDir, val: 0.6, test: 0.4 }), (e: AppError) => e.code === 'bad_arguments' && /val 0\.6, test 0\.4/.test(e.message));
});
