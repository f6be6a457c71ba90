import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { importDataset } from '../../../src/main/dataset/import';
import { decodeSquare, loadImageForEval } from '../../../src/main/dataset/decode';
import { absPath } from '../../../src/main/dataset/snapshot';
import { MOBILENET_224, realJpeg, tempDir, tempHome, treeFingerprint, writeTree } from './fixtures';

const UNICODE_CLASS = "fleurs d'été";
const UNICODE_FILE = `${UNICODE_CLASS}/ñandú 1.png`;

/** A grey + alpha PNG: left half opaque grey 40, right half fully transparent. */
async function greyAlphaPng(): Promise<Buffer> {
  const w = 96;
  const h = 80;
  const raw = Buffer.alloc(w * h * 2);
  for (let i = 0; i < w * h; i++) {
    raw[2 * i] = 40;
    raw[2 * i + 1] = i % w < w / 2 ? 255 : 0;
  }
  return sharp(raw, { raw: { width: w, height: h, channels: 2 } }).toColourspace('b-w').png().toBuffer();
}

function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length;
}

async function makeBadFolder(root: string) {
  const ant = realJpeg('ants', 3);
  const exif6 = await sharp(realJpeg('ants', 4)).withMetadata({ orientation: 6 }).jpeg({ quality: 90 }).toBuffer();
  const deep = await sharp(realJpeg('bees', 4)).toColourspace('rgb16').png().toBuffer();
  writeTree(root, {
    'ants/a0.jpg': realJpeg('ants', 0),
    'ants/a1.jpg': realJpeg('ants', 1),
    'ants/a2.jpg': realJpeg('ants', 2),
    'ants/empty.jpg': Buffer.alloc(0),
    'ants/truncated.jpg': ant.subarray(0, ant.length >> 1),
    'ants/notes.jpg': 'These are my notes, not a picture.\n',
    'ants/rotated.jpg': exif6,
    'ants/sub/a3.jpg': ant,
    'bees/b0.jpg': realJpeg('bees', 0),
    'bees/b1.jpg': realJpeg('bees', 1),
    'bees/b2.jpg': realJpeg('bees', 2),
    'bees/b2 copy.jpg': realJpeg('bees', 2),
    'bees/deep16.png': deep,
    'bees/grey-alpha.png': await greyAlphaPng(),
    [UNICODE_FILE]: await sharp(realJpeg('bees', 5)).png().toBuffer(),
    [`${UNICODE_CLASS}/deux.jpg`]: realJpeg('bees', 6),
    [`${UNICODE_CLASS}/trois.jpg`]: realJpeg('bees', 7),
    'solo/only one.jpg': realJpeg('ants', 5),
  });
  // Loops: one link to its own parent (the class folder), one up to the dataset root.
  fs.symlinkSync('..', path.join(root, 'ants/sub/loop'));
  fs.symlinkSync('..', path.join(root, 'bees/up'));
  return { exif6, deep };
}

test('bad files are skipped with reasons, odd images decode to RGB, loops end, the source is untouched', async () => {
  const root = path.join(tempDir(), 'my photos');
  const { exif6, deep } = await makeBadFolder(root);
  const before = treeFingerprint(root);
  const home = tempHome();
  const { report: r, snapshot } = await importDataset({ path: root, datasetsDir: home.datasetsDir, decodeCacheDir: home.decodeCacheDir, seed: 3 });

  assert.equal(r.layout, 'class-folders');
  assert.deepEqual(r.classes, ['ants', 'bees', UNICODE_CLASS, 'solo']);
  const reasons = Object.fromEntries(r.skipped.map((s) => [s.path, s.reason]));
  assert.deepEqual(Object.keys(reasons).sort(), ['ants/empty.jpg', 'ants/notes.jpg', 'ants/truncated.jpg']);
  assert.match(reasons['ants/empty.jpg'], /empty file/);
  assert.match(reasons['ants/notes.jpg'], /not an image/);
  assert.match(reasons['ants/truncated.jpg'], /truncated/);

  // Everything else is in, each file once although the loops could reach it again.
  const rels = snapshot.files.map((f) => f.rel).sort();
  assert.deepEqual(rels, ['ants/a0.jpg', 'ants/a1.jpg', 'ants/a2.jpg', 'ants/rotated.jpg', 'ants/sub/a3.jpg', 'bees/b0.jpg', 'bees/b1.jpg', 'bees/b2 copy.jpg', 'bees/b2.jpg', 'bees/deep16.png', 'bees/grey-alpha.png', `${UNICODE_CLASS}/deux.jpg`, UNICODE_FILE, `${UNICODE_CLASS}/trois.jpg`, 'solo/only one.jpg'].sort());
  const total = (cls: string) => Object.values(r.counts).reduce((a, c) => a + (c[cls] ?? 0), 0);
  assert.deepEqual(r.classes.map(total), [5, 6, 3, 1]);
  assert.deepEqual(r.tooFewToSplit, ['solo']);
  assert.equal(r.counts.train.solo, 1);
  assert.equal(r.usable, true);
  assert.ok(r.warnings.some((w) => /skipped/.test(w)) && r.warnings.some((w) => /Too few images to split for: solo/.test(w)));

  // Identical bytes under two names: a duplicate, kept in one split (no leak).
  assert.equal(r.duplicates.length, 1);
  assert.deepEqual(r.duplicates[0].paths.sort(), ['bees/b2 copy.jpg', 'bees/b2.jpg']);
  assert.deepEqual(r.leaks, []);
  const byRel = new Map(snapshot.files.map((f) => [f.rel, f]));
  assert.equal(byRel.get('bees/b2.jpg')!.split, byRel.get('bees/b2 copy.jpg')!.split);

  // EXIF orientation 6: the report gives the upright size and the pixels are the rotated ones.
  const raw = await sharp(exif6).metadata();
  const rot = byRel.get('ants/rotated.jpg')!;
  assert.deepEqual([rot.width, rot.height], [raw.height, raw.width]);
  assert.ok(raw.width! > raw.height!, 'the source is landscape, so upright it is portrait');
  const upright = await sharp(exif6).rotate().png().toBuffer();
  const decoded = await loadImageForEval(path.join(root, 'ants/rotated.jpg'), MOBILENET_224);
  const reference = await loadImageForEval(await writeTemp(upright, 'upright.png'), MOBILENET_224);
  const ignoringExif = await loadImageForEval(await writeTemp(await sharp(exif6).withMetadata({ orientation: 1 }).png().toBuffer(), 'sideways.png'), MOBILENET_224);
  assert.ok(meanAbsDiff(decoded, reference) < 1, `rotated like sharp's rotate(): ${meanAbsDiff(decoded, reference)}`);
  assert.ok(meanAbsDiff(decoded, ignoringExif) > 10, 'and not left sideways');

  // 16-bit PNG: scaled to 8 bits (not clipped), matching the same picture saved at 8 bits.
  const deep8 = await sharp(deep).toColourspace('srgb').png().toBuffer();
  const d16 = (await decodeSquare(deep, 256)).pixels;
  const d8 = (await decodeSquare(deep8, 256)).pixels;
  assert.ok(meanAbsDiff(d16, d8) < 1, `16-bit vs 8-bit ${meanAbsDiff(d16, d8)}`);
  assert.equal(byRel.get('bees/deep16.png')!.format, 'png');

  // Grey + alpha: three equal channels, transparent parts on white.
  const ga = (await decodeSquare(fs.readFileSync(path.join(root, 'bees/grey-alpha.png')), 256)).pixels;
  assert.equal(ga.length, 256 * 256 * 3);
  const at = (x: number, y: number) => Array.from(ga.subarray((y * 256 + x) * 3, (y * 256 + x) * 3 + 3));
  assert.deepEqual(at(40, 128), [40, 40, 40]);
  assert.deepEqual(at(220, 128), [255, 255, 255]);

  // Unicode and spaces: listed with their real names and readable from the snapshot.
  const uni = byRel.get(UNICODE_FILE)!;
  assert.equal(snapshot.classes[uni.label], UNICODE_CLASS);
  assert.ok(fs.existsSync(absPath(snapshot, uni)));
  assert.equal((await loadImageForEval(absPath(snapshot, uni), MOBILENET_224)).length, 224 * 224 * 3);

  assert.deepEqual(treeFingerprint(root), before, 'nothing in the source changed or was added');
});

const scratch = tempDir();
async function writeTemp(bytes: Buffer, name: string): Promise<string> {
  const p = path.join(scratch, name);
  fs.writeFileSync(p, bytes);
  return p;
}

test('the same bytes in train/ and val/ of a pre-split folder are reported as a leak', async () => {
  const root = tempDir();
  writeTree(root, {
    'train/ants/x.jpg': realJpeg('ants', 0),
    'train/ants/a1.jpg': realJpeg('ants', 1),
    'train/bees/b0.jpg': realJpeg('bees', 0),
    'val/ants/x.jpg': realJpeg('ants', 0),
    'val/bees/b1.jpg': realJpeg('bees', 1),
  });
  const before = treeFingerprint(root);
  const home = tempHome();
  const { report: r } = await importDataset({ path: root, datasetsDir: home.datasetsDir, decodeCacheDir: home.decodeCacheDir });
  assert.equal(r.layout, 'pre-split');
  assert.equal(r.leaks.length, 1);
  assert.deepEqual(r.leaks[0].paths.sort(), ['train/ants/x.jpg', 'val/ants/x.jpg']);
  assert.deepEqual(r.leaks[0].splits.sort(), ['train', 'val']);
  assert.deepEqual(r.conflicts, []);
  assert.ok(r.warnings.some((w) => /more than one split/.test(w)));
  assert.deepEqual(treeFingerprint(root), before);
});

test('a link from a pre-split class folder back to its split folder does not hang or relabel', async () => {
  const root = tempDir();
  writeTree(root, {
    'train/ants/a.jpg': realJpeg('ants', 0),
    'train/bees/b.jpg': realJpeg('bees', 0),
    'val/ants/a.jpg': realJpeg('ants', 1),
    'val/bees/b.jpg': realJpeg('bees', 1),
  });
  fs.symlinkSync('..', path.join(root, 'train/ants/split'));
  fs.symlinkSync('../..', path.join(root, 'val/bees/top'));
  const home = tempHome();
  const { report: r } = await importDataset({ path: root, datasetsDir: home.datasetsDir, decodeCacheDir: home.decodeCacheDir });
  assert.deepEqual(r.counts, { train: { ants: 1, bees: 1 }, val: { ants: 1, bees: 1 } });
});
