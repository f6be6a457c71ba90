/**
 * Small real data sets for tests: a pre-split copy of part of hymenoptera (real photos),
 * so training tests stay short while exercising every real code path.
 */
import fs from 'node:fs';
import path from 'node:path';
import { hymenopteraDir, tempDir } from './paths';

/** Copy the first `perClass` images of each class of each split (sorted by name) into a temp folder. */
export function hymenopteraSubset(perClass: { train: number; val: number }, prefix = 'hymenoptera-subset-'): string {
  const root = tempDir(prefix);
  for (const split of ['train', 'val'] as const) {
    for (const cls of ['ants', 'bees']) {
      const src = path.join(hymenopteraDir, split, cls);
      const dst = path.join(root, split, cls);
      fs.mkdirSync(dst, { recursive: true });
      const files = fs.readdirSync(src).filter((f) => /\.jpe?g$/i.test(f)).sort().slice(0, perClass[split]);
      for (const f of files) fs.copyFileSync(path.join(src, f), path.join(dst, f));
    }
  }
  return root;
}
