/** Helpers for the dataset tests: temp homes, copies of real images, tree hashes, small generated images. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { MINUS_ONE_TO_ONE, type Preprocessing } from '../../../src/shared/preprocessing';
import { hymenopteraDir, tempDir } from '../../helpers/paths';

export { hymenopteraDir, tempDir };

/** The default backbone's preprocessing (MobileNetV2 at 224). */
export const MOBILENET_224: Preprocessing = { size: 224, cropFraction: 0.875, trainCrop: 'random-resized-crop', scaling: MINUS_ONE_TO_ONE, channels: 3 };

/** A fresh home's snapshot folder and decode cache. */
export function tempHome(): { home: string; datasetsDir: string; decodeCacheDir: string } {
  const home = tempDir('finetune-ds-home-');
  return { home, datasetsDir: path.join(home, 'datasets'), decodeCacheDir: path.join(home, 'cache', 'decoded') };
}

/** The sorted .jpg names of a hymenoptera folder, e.g. realJpegs('train/ants'). */
export function realJpegs(sub: string): string[] {
  return fs
    .readdirSync(path.join(hymenopteraDir, sub))
    .filter((f) => f.endsWith('.jpg'))
    .sort();
}

/** Copy the first `n` JPEGs of each hymenoptera split/class into `dst` (pre-split layout). */
export function copyHymenopteraSubset(dst: string, perClass: { train: number; val: number }): void {
  for (const split of ['train', 'val'] as const) {
    for (const cls of ['ants', 'bees']) {
      fs.mkdirSync(path.join(dst, split, cls), { recursive: true });
      for (const f of realJpegs(`${split}/${cls}`).slice(0, perClass[split])) fs.copyFileSync(path.join(hymenopteraDir, split, cls, f), path.join(dst, split, cls, f));
    }
  }
}

/** The bytes of the k-th real training JPEG of a class. */
export function realJpeg(cls: 'ants' | 'bees', k: number): Buffer {
  return fs.readFileSync(path.join(hymenopteraDir, 'train', cls, realJpegs(`train/${cls}`)[k]));
}

/**
 * Every entry under `dir` without following links: files by content hash, links by target,
 * folders by name. Two equal maps mean nothing was changed, added or removed.
 */
export function treeFingerprint(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const rel = path.relative(dir, p);
      const st = fs.lstatSync(p);
      if (e.isSymbolicLink()) out.set(rel, `link:${fs.readlinkSync(p)}`);
      else if (e.isDirectory()) {
        out.set(rel, 'dir');
        walk(p);
      } else out.set(rel, `${crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex')}:${st.mtimeMs}`);
    }
  };
  walk(dir);
  return out;
}

/** A small, distinct, photo-like PNG (smooth gradients plus seeded noise): never flat, never small. */
export async function noisePng(seed: number, side = 72): Promise<Buffer> {
  const px = Buffer.alloc(side * side * 3);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < side * side; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const x = i % side;
    const y = Math.floor(i / side);
    px[3 * i] = (x * 3 + (s & 63)) & 255;
    px[3 * i + 1] = (y * 3 + ((s >>> 8) & 63)) & 255;
    px[3 * i + 2] = (seed * 37 + ((s >>> 16) & 127)) & 255;
  }
  return sharp(px, { raw: { width: side, height: side, channels: 3 } }).png().toBuffer();
}

/** Write `files` ({ relative path: bytes }) under `root`, creating folders. */
export function writeTree(root: string, files: Record<string, Buffer | string>): void {
  for (const [rel, bytes] of Object.entries(files)) {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, bytes);
  }
}
