/** Where tests find the repo and the read-only ../shared material (models, datasets). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const sharedDir = process.env.FINETUNE_SHARED ?? path.resolve(repoRoot, '../shared');
export const modelsMirror = path.join(sharedDir, 'models');
export const mobilenetV2Dir = path.join(modelsMirror, 'teachable-machine-models/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top');
export const hymenopteraDir = path.join(sharedDir, 'datasets/hymenoptera');

/** A fresh temp folder, removed when the process exits. */
export function tempDir(prefix = 'finetune-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}
