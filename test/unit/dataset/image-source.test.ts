import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { importDataset } from '../../../src/main/dataset/import';
import { openImageSource, openImageSourceById, type ImageSource } from '../../../src/main/dataset/image-source';
import { loadImageForEval } from '../../../src/main/dataset/decode';
import { augmentImage } from '../../../src/main/dataset/augment';
import { DecodeCache } from '../../../src/main/dataset/cache';
import { MOBILENET_224, copyHymenopteraSubset, tempDir, tempHome } from './fixtures';

const PER = 224 * 224 * 3;

/** A temp copy of a small hymenoptera subset, imported; the decode cache for the sources is separate. */
async function setup() {
  const root = path.join(tempDir(), 'subset');
  copyHymenopteraSubset(root, { train: 3, val: 2 });
  const home = tempHome();
  const { snapshot } = await importDataset({ path: root, datasetsDir: home.datasetsDir, decodeCacheDir: home.decodeCacheDir });
  return { root, home, snapshot, cacheDir: path.join(tempDir(), 'decoded') };
}

const all = (s: ImageSource) => Array.from({ length: s.length }, (_, i) => i);
const view = (batch: Uint8Array, k: number) => batch.subarray(k * PER, (k + 1) * PER);

function mirrored(img: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(img.length);
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) out.set(img.subarray((y * size + x) * 3, (y * size + x) * 3 + 3), (y * size + size - 1 - x) * 3);
  return out;
}

test('load() gives n x 224 x 224 x 3 eval views equal to loadImageForEval, then reads them from the cache only', async () => {
  const { snapshot, cacheDir, home } = await setup();
  const train = await openImageSource({ snapshot, split: 'train', preprocessing: MOBILENET_224, cacheDir });
  assert.equal(train.length, 6);
  assert.equal(train.imageSize, 224);
  assert.deepEqual(train.classNames, ['ants', 'bees']);
  assert.deepEqual(Array.from(train.labels), [0, 0, 0, 1, 1, 1]);
  const batch = await train.load(all(train), { epoch: 0, augment: false });
  assert.equal(batch.length, 6 * PER);
  for (let k = 0; k < train.length; k++) assert.deepEqual(view(batch, k), await loadImageForEval(train.paths[k], MOBILENET_224), `image ${k}`);

  const cache = new DecodeCache(cacheDir, 256);
  const hashes = snapshot.files.filter((f) => f.split === 'train').map((f) => f.hash);
  assert.ok(hashes.every((h) => cache.has(h)), 'the first load filled the cache');

  // The source files go away (a temp copy!): loads still work from the cache alone.
  const val = await openImageSourceById(home.datasetsDir, snapshot.id, { split: 'val', preprocessing: MOBILENET_224, cacheDir });
  await val.warm();
  for (const p of [...train.paths, ...val.paths]) fs.rmSync(p);
  assert.deepEqual(await train.load(all(train), { epoch: 0, augment: false }), batch);
  assert.equal((await val.load([3, 0], { epoch: 0, augment: false })).length, 2 * PER);

  // A size that is not cached must decode, and says what happened.
  const other = await openImageSource({ snapshot, split: 'train', preprocessing: { ...MOBILENET_224, size: 160 }, cacheDir });
  await assert.rejects(other.load([0], { epoch: 0, augment: false }), (e: Error & { code?: string }) => e.code === 'image_changed' && /import it again/.test(e.message));
  await assert.rejects(train.load([99], { epoch: 0, augment: false }), /out of range/);
});

test('augmentation is deterministic for (seed, epoch, index), differs across epochs, and flip-only mirrors the eval view', async () => {
  const { snapshot, cacheDir } = await setup();
  const augment = { randomResizedCrop: { scale: [0.5, 1] as [number, number], ratio: [3 / 4, 4 / 3] as [number, number] }, hflip: true, rotation: 10, brightness: 0.2, contrast: 0.2, saturation: 0.2, hue: 0.05 };
  const src = await openImageSource({ snapshot, split: 'train', preprocessing: MOBILENET_224, cacheDir, augment, seed: 5 });
  const idx = all(src);
  const e0 = await src.load(idx, { epoch: 0, augment: true });
  assert.deepEqual(await src.load(idx, { epoch: 0, augment: true }), e0);
  // Order of the batch does not change an image's view: it depends on its index only.
  const reversed = await src.load([...idx].reverse(), { epoch: 0, augment: true });
  assert.deepEqual(view(reversed, 0), view(e0, idx.length - 1));
  const e1 = await src.load(idx, { epoch: 1, augment: true });
  for (let k = 0; k < idx.length; k++) assert.notDeepEqual(view(e1, k), view(e0, k), `image ${k} differs across epochs`);
  const eval0 = await src.load(idx, { epoch: 0, augment: false });
  assert.notDeepEqual(e0, eval0);
  const otherSeed = await openImageSource({ snapshot, split: 'train', preprocessing: MOBILENET_224, cacheDir, augment, seed: 6 });
  assert.notDeepEqual(await otherSeed.load(idx, { epoch: 0, augment: true }), e0);

  // Flip only: each view is the eval view or its mirror image, and both happen.
  const flip = await openImageSource({ snapshot, split: 'train', preprocessing: MOBILENET_224, cacheDir, augment: { randomResizedCrop: false, hflip: true }, seed: 1 });
  let same = 0;
  let mirror = 0;
  for (let epoch = 0; epoch < 4; epoch++) {
    const b = await flip.load(idx, { epoch, augment: true });
    for (let k = 0; k < idx.length; k++) {
      const v = view(b, k);
      const ev = view(eval0, k);
      if (Buffer.compare(v, ev) === 0) same++;
      else {
        assert.deepEqual(v, mirrored(ev, 224), `epoch ${epoch} image ${k}: neither identical nor mirrored`);
        mirror++;
      }
    }
  }
  assert.ok(same > 0 && mirror > 0, `${same} identical, ${mirror} mirrored`);
});

test('augmentImage draws stay inside [0, 255] and keep a flat grey image flat without jitter', () => {
  const side = 64;
  const grey = new Uint8Array(side * side * 3).fill(128);
  const out = augmentImage(grey, side, 48, { randomResizedCrop: { scale: [0.2, 1], ratio: [0.5, 2] }, hflip: true, vflip: true, rotation: 45 }, 0, 3, 9);
  assert.equal(out.length, 48 * 48 * 3);
  assert.ok(out.every((v) => v === 128));
  const bright = augmentImage(grey, side, 48, { brightness: 1, contrast: 1, saturation: 1, hue: 0.5 }, 0, 0, 0);
  assert.ok(bright.every((v) => v >= 0 && v <= 255));
});
