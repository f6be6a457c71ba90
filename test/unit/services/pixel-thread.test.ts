import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { initBackend } from '../../../src/main/engine/backend';
import { buildFeatureStore, evalViews, trainViews } from '../../../src/main/engine/feature-cache';
import { scalePixels } from '../../../src/main/engine/data';
import { scalingTable } from '../../../src/shared/preprocessing';
import { scalingAffine } from '../../../src/shared/preprocessing';
import { importDataset } from '../../../src/main/dataset/import';
import { openImageSource, type ImageSource } from '../../../src/main/dataset/image-source';
import { DEFAULT_AUGMENT } from '../../../src/main/dataset/augment';
import { startPixelThread, type PixelThreadHandle } from '../../../src/main/services/jobs/pixel-thread';
import { MOBILENET_224, copyHymenopteraSubset, tempDir, tempHome } from '../dataset/fixtures';
import { FakeNet } from '../engine/fake-net';

let thread: PixelThreadHandle;
before(async () => {
  await initBackend();
  thread = startPixelThread();
});
after(async () => {
  await thread.dispose();
});

/** The same split opened twice: read on this thread, and on the pixel thread. */
async function sources(split: 'train' | 'val') {
  const root = path.join(tempDir(), 'subset');
  copyHymenopteraSubset(root, { train: 3, val: 2 });
  const home = tempHome();
  const { snapshot } = await importDataset({ path: root, datasetsDir: home.datasetsDir, decodeCacheDir: home.decodeCacheDir });
  const o = { snapshot, split, preprocessing: MOBILENET_224, cacheDir: home.decodeCacheDir, augment: DEFAULT_AUGMENT, seed: 7 };
  return { local: await openImageSource(o), remote: await openImageSource({ ...o, thread }) };
}

const all = (s: ImageSource) => Array.from({ length: s.length }, (_, i) => i);

test('the scaling table gives each pixel the float32 of v * mul + add, as computing it per pixel did', () => {
  const scaling = MOBILENET_224.scaling;
  const { mul, add } = scalingAffine(scaling);
  const pixels = Uint8Array.from({ length: 256 * 3 }, (_, i) => (i * 7) % 256);
  const expected = Float32Array.from(pixels, (v, i) => v * mul[i % 3] + add[i % 3]);
  assert.deepEqual(scalePixels(pixels, scaling), expected);
  assert.equal(scalingTable(scaling).length, 768);
});

test('batches made on the pixel thread equal this thread’s: eval and augmented views, uint8 and scaled', async () => {
  const { local, remote } = await sources('train');
  const table = scalingTable(MOBILENET_224.scaling);
  const idx = [5, 0, 3, 1];
  for (const opts of [{ epoch: 0, augment: false }, { epoch: 0, augment: true }, { epoch: 2, augment: true }]) {
    const mine = await local.load(idx, opts);
    assert.deepEqual(await remote.load(idx, opts), mine, `uint8 ${JSON.stringify(opts)}`);
    assert.deepEqual(await remote.loadScaled!(idx, opts, table), scalePixels(mine, MOBILENET_224.scaling), `scaled ${JSON.stringify(opts)}`);
  }
  // Errors cross with their code.
  await assert.rejects(remote.load([99], { epoch: 0, augment: false }), (e: Error & { code?: string }) => e.code === 'internal' && /out of range/.test(e.message));
});

test('a feature cache built from the pixel thread (overlapped) holds the same features as one built here', async () => {
  const { local, remote } = await sources('train');
  const net = new FakeNet(224, 3);
  try {
    for (const views of [trainViews(true, 3), evalViews('flip')]) {
      const build = (source: ImageSource) => buildFeatureStore({ net, source, boundary: 2, views, memoryBytes: 2 ** 30, batchSize: 4 });
      const [a, b] = [await build(local), await build(remote)];
      for (let v = 0; v < views.length; v++) {
        const ids = all(local);
        assert.deepEqual(b.read(ids, ids.map(() => v)), a.read(ids, ids.map(() => v)), `view ${v}`);
      }
      a.dispose();
      b.dispose();
    }
  } finally {
    net.dispose();
  }
});
