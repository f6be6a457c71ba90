/**
 * A small ImageSource over real photos (an image-folder split) for engine tests, decoded
 * with sharp: eval view = resize the short side to size / 0.875 + centre crop; augmented
 * view = seeded random resized crop (scale 0.6-1) + horizontal flip. Stands in for the
 * datasets slice's ImageSource in engine tests; decodes once per view and keeps the pixels.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import type { ImageSource } from '../../../src/main/engine/data';
import { Rng } from '../../../src/main/engine/rng';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const SHARED = path.resolve(REPO_ROOT, '../shared');
export const MNV2_035 = path.join(SHARED, 'models/teachable-machine-models/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top/model.json');
export const HYMENOPTERA = path.join(SHARED, 'datasets/hymenoptera');

export class FolderSource implements ImageSource {
  readonly classNames: string[];
  readonly labels: Int32Array;
  readonly paths: string[];
  private readonly memo = new Map<string, Uint8Array>();

  /** The first `perClass` decodable JPEGs of each class folder under `dir`. */
  constructor(
    dir: string,
    readonly imageSize: number,
    perClass: number,
    private readonly seed = 0,
  ) {
    this.classNames = fs.readdirSync(dir).filter((d) => fs.statSync(path.join(dir, d)).isDirectory()).sort();
    const paths: string[] = [];
    const labels: number[] = [];
    this.classNames.forEach((c, k) => {
      const files = fs.readdirSync(path.join(dir, c)).filter((f) => /\.jpe?g$/i.test(f)).sort().slice(0, perClass);
      for (const f of files) {
        paths.push(path.join(dir, c, f));
        labels.push(k);
      }
    });
    this.paths = paths;
    this.labels = Int32Array.from(labels);
  }

  get length(): number {
    return this.paths.length;
  }

  get numClasses(): number {
    return this.classNames.length;
  }

  private async one(i: number, epoch: number, augment: boolean): Promise<Uint8Array> {
    const key = `${i}:${augment ? epoch : -1}`;
    const hit = this.memo.get(key);
    if (hit) return hit;
    const S = this.imageSize;
    let img = sharp(this.paths[i]).rotate().removeAlpha().toColourspace('srgb');
    let flip = false;
    if (augment) {
      const meta = await sharp(this.paths[i]).rotate().metadata();
      const [w, h] = meta.autoOrient ? [meta.autoOrient.width, meta.autoOrient.height] : [meta.width!, meta.height!];
      const rng = new Rng(this.seed * 1_000_003 + i * 7919 + epoch * 104_729);
      const area = w * h * (0.6 + 0.4 * rng.next());
      const ratio = Math.exp(Math.log(3 / 4) + rng.next() * Math.log(16 / 9));
      const cw = Math.min(w, Math.round(Math.sqrt(area * ratio)));
      const ch = Math.min(h, Math.round(Math.sqrt(area / ratio)));
      const left = Math.floor(rng.next() * (w - cw + 1));
      const top = Math.floor(rng.next() * (h - ch + 1));
      img = img.extract({ left, top, width: cw, height: ch }).resize(S, S, { fit: 'fill' });
      flip = rng.next() < 0.5;
    } else {
      const short = Math.round(S / 0.875);
      img = img.resize(short, short, { fit: 'outside' }).resize(S, S, { fit: 'cover', position: 'centre' });
    }
    if (flip) img = img.flop();
    const buf = await img.raw().toBuffer();
    const out = new Uint8Array(buf.buffer, buf.byteOffset, S * S * 3);
    this.memo.set(key, out);
    return out;
  }

  async load(indices: number[], opts: { epoch: number; augment: boolean }): Promise<Uint8Array> {
    const S = this.imageSize;
    const out = new Uint8Array(indices.length * S * S * 3);
    const parts = await Promise.all(indices.map((i) => this.one(i, opts.epoch, opts.augment)));
    parts.forEach((p, k) => out.set(p, k * S * S * 3));
    return out;
  }
}
