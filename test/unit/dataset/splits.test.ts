import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { assignSplits, importDataset } from '../../../src/main/dataset/import';
import type { FoundFile, Split } from '../../../src/main/dataset/scan';
import { noisePng, tempDir, tempHome, writeTree } from './fixtures';

type Item = FoundFile & { hash: string };

/** Files of fake content: `perClass[c]` distinct hashes per class, plus `copies` duplicates of the first. */
function files(perClass: Record<string, number>, copies = 0): Item[] {
  const out: Item[] = [];
  for (const [label, n] of Object.entries(perClass)) {
    for (let i = 0; i < n; i++) {
      const hash = crypto.createHash('sha256').update(`${label}/${i}`).digest('hex');
      out.push({ abs: `/x/${label}/${i}.jpg`, rel: `${label}/${i}.jpg`, label, hash });
      if (i === 0) for (let c = 0; c < copies; c++) out.push({ abs: `/x/${label}/${i}-copy${c}.jpg`, rel: `${label}/${i}-copy${c}.jpg`, label, hash });
    }
  }
  return out;
}

const share = (items: Item[], splits: Split[], label: string, split: Split) => {
  const mine = items.map((f, i) => [f, splits[i]] as const).filter(([f]) => f.label === label);
  return mine.filter(([, s]) => s === split).length / mine.length;
};

test('same seed, same split; another seed, another split', () => {
  const items = files({ cats: 50, dogs: 30 });
  const a = assignSplits(items, 0.2, 0.1, 7).splits;
  assert.deepEqual(assignSplits(items, 0.2, 0.1, 7).splits, a);
  assert.notDeepEqual(assignSplits(items, 0.2, 0.1, 8).splits, a);
  // Listing order does not matter: the split follows content, not position.
  const reversed = [...items].reverse();
  assert.deepEqual(assignSplits(reversed, 0.2, 0.1, 7).splits.reverse(), a);
});

test('stratified: each class gets its share of val and test', () => {
  const items = files({ big: 200, mid: 60, small: 11 });
  const { splits, tooFew } = assignSplits(items, 0.2, 0.1, 1);
  assert.deepEqual(tooFew, []);
  for (const label of ['big', 'mid', 'small']) {
    const n = items.filter((f) => f.label === label).length;
    assert.ok(Math.abs(share(items, splits, label, 'val') - 0.2) <= 0.5 / n + 1e-9, `${label} val ${share(items, splits, label, 'val')}`);
    assert.ok(Math.abs(share(items, splits, label, 'test') - 0.1) <= 0.5 / n + 1e-9, `${label} test ${share(items, splits, label, 'test')}`);
  }
  // A small fraction still gives each class at least one validation image.
  const tiny = assignSplits(files({ a: 3, b: 4 }), 0.05, 0, 0);
  assert.deepEqual(tiny.splits.filter((s) => s === 'val').length, 2);
});

test('identical files stay in the same split; classes too small to split stay in training', () => {
  const items = files({ a: 20, b: 20 }, 4);
  for (let seed = 0; seed < 20; seed++) {
    const { splits } = assignSplits(items, 0.3, 0.2, seed);
    for (const label of ['a', 'b']) {
      const group = items.map((f, i) => [f, splits[i]] as const).filter(([f]) => f.label === label && f.rel.startsWith(`${label}/0`));
      assert.equal(group.length, 5);
      assert.equal(new Set(group.map(([, s]) => s)).size, 1, `seed ${seed}: copies split apart`);
    }
  }
  const small = files({ a: 10, b: 1, c: 2 });
  const few = assignSplits(small, 0.2, 0.2, 0);
  assert.deepEqual(few.tooFew.sort(), ['b', 'c']);
  assert.ok(few.splits.every((s, i) => s === 'train' || small[i].label === 'a'));
});

test('pre-split files keep their split', () => {
  const items = files({ a: 6, b: 6 }).map((f, i): Item => ({ ...f, split: i % 2 ? 'val' : 'train' }));
  assert.deepEqual(assignSplits(items, 0.5, 0.2, 3).splits, items.map((f) => f.split));
});

test('a real import: same seed same snapshot, another seed another one, copies together', async () => {
  const root = tempDir();
  const tree: Record<string, Buffer> = {};
  for (let i = 0; i < 10; i++) {
    tree[`circles/c${i}.png`] = await noisePng(i);
    tree[`squares/s${i}.png`] = await noisePng(100 + i);
  }
  tree['circles/c0 again.png'] = tree['circles/c0.png'];
  writeTree(root, tree);
  const home = tempHome();
  const run = (seed: number) => importDataset({ path: root, datasetsDir: home.datasetsDir, decodeCacheDir: home.decodeCacheDir, seed, val: 0.3 });
  const a = await run(1);
  assert.equal((await run(1)).report.snapshotId, a.report.snapshotId);
  const ids = new Set([a.report.snapshotId]);
  for (const seed of [2, 3, 4]) ids.add((await run(seed)).report.snapshotId);
  assert.ok(ids.size >= 3, 'other seeds give other splits');
  assert.deepEqual(a.report.counts.val, { circles: 3, squares: 3 });
  const split = (rel: string) => a.snapshot.files.find((f) => f.rel === rel)!.split;
  assert.equal(split('circles/c0.png'), split('circles/c0 again.png'));
  assert.deepEqual(a.report.leaks, []);
  assert.deepEqual(a.snapshot.options, { val: 0.3, test: 0, seed: 1 });
});
