/**
 * Augmentation on the cached S x S uint8 image, in plain typed-array code: random resized
 * crop (scale, ratio), flips, rotation and colour jitter. Every draw comes from a generator
 * seeded by (seed, epoch, index), so an epoch's images are the same on every run and resume.
 */
import { derivedRng, type Rng } from '../engine/rng';

export interface AugmentConfig {
  randomResizedCrop?: { scale: [number, number]; ratio: [number, number] } | false;
  hflip?: boolean;
  vflip?: boolean;
  /** Maximum rotation in degrees (uniform in [-r, r]). */
  rotation?: number;
  /** Jitter factors as in torchvision's ColorJitter: brightness 0.2 = factor in [0.8, 1.2]. */
  brightness?: number;
  contrast?: number;
  saturation?: number;
  /** Hue shift in [-hue, hue] turns (0..0.5). */
  hue?: number;
}

export const NO_AUGMENT: AugmentConfig = {};

/** What the `augment: true` switch turns on: the tutorials' recipe (crop 60-100%, horizontal flip). */
export const DEFAULT_AUGMENT: AugmentConfig = {
  randomResizedCrop: { scale: [0.6, 1], ratio: [3 / 4, 4 / 3] },
  hflip: true,
};

interface Crop {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** torchvision's RandomResizedCrop box, with its centre-crop fallback after 10 tries. */
function cropBox(rng: Rng, side: number, scale: [number, number], ratio: [number, number]): Crop {
  const area = side * side;
  const logR = [Math.log(ratio[0]), Math.log(ratio[1])];
  for (let t = 0; t < 10; t++) {
    const target = area * (scale[0] + rng.next() * (scale[1] - scale[0]));
    const ar = Math.exp(logR[0] + rng.next() * (logR[1] - logR[0]));
    const w = Math.round(Math.sqrt(target * ar));
    const h = Math.round(Math.sqrt(target / ar));
    if (w > 0 && h > 0 && w <= side && h <= side) return { x: rng.int(side - w + 1), y: rng.int(side - h + 1), w, h };
  }
  return { x: 0, y: 0, w: side, h: side };
}

function clamp255(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Hue rotation matrix in RGB space (a standard YIQ-style approximation). */
function hueMatrix(turns: number): number[] {
  const a = turns * 2 * Math.PI;
  const c = Math.cos(a);
  const s = Math.sin(a);
  return [
    0.299 + 0.701 * c + 0.168 * s, 0.587 - 0.587 * c + 0.330 * s, 0.114 - 0.114 * c - 0.497 * s,
    0.299 - 0.299 * c - 0.328 * s, 0.587 + 0.413 * c + 0.035 * s, 0.114 - 0.114 * c + 0.292 * s,
    0.299 - 0.3 * c + 1.25 * s, 0.587 - 0.588 * c - 1.05 * s, 0.114 + 0.886 * c - 0.203 * s,
  ];
}

/**
 * One augmented `size` x `size` view of a `side` x `side` RGB image. Bilinear sampling
 * through the inverse of crop + flip + rotation; colour jitter applied per pixel.
 */
export function augmentImage(src: Uint8Array, side: number, size: number, cfg: AugmentConfig, seed: number, epoch: number, index: number): Uint8Array {
  return augmentImageInto(src, side, size, cfg, seed, epoch, index, new Uint8Array(size * size * 3));
}

/** augmentImage written into `out` (size x size x 3, e.g. one image's slice of a batch buffer). */
export function augmentImageInto(src: Uint8Array, side: number, size: number, cfg: AugmentConfig, seed: number, epoch: number, index: number, out: Uint8Array): Uint8Array {
  const rng = derivedRng(seed, `augment:${epoch}`, index);
  const rrc = cfg.randomResizedCrop;
  let box: Crop;
  if (rrc) box = cropBox(rng, side, rrc.scale, rrc.ratio);
  else {
    const off = (side - size) / 2;
    box = { x: off, y: off, w: size, h: size };
  }
  const hflip = cfg.hflip ? rng.next() < 0.5 : false;
  const vflip = cfg.vflip ? rng.next() < 0.5 : false;
  const angle = cfg.rotation ? ((rng.next() * 2 - 1) * cfg.rotation * Math.PI) / 180 : 0;
  const bright = cfg.brightness ? 1 + (rng.next() * 2 - 1) * cfg.brightness : 1;
  const contrast = cfg.contrast ? 1 + (rng.next() * 2 - 1) * cfg.contrast : 1;
  const sat = cfg.saturation ? 1 + (rng.next() * 2 - 1) * cfg.saturation : 1;
  const hue = cfg.hue ? (rng.next() * 2 - 1) * cfg.hue : 0;
  const sx = box.w / size;
  const sy = box.h / size;
  const cx = box.x + box.w / 2;
  const cy = box.y + box.h / 2;
  const cos = Math.cos(angle);
  const sin = Math.sin(angle);
  const max = side - 1;
  if (!angle) {
    resampleAxisAligned(src, side, size, out, sx, sy, cx, cy, box, hflip, vflip);
    if (bright !== 1 || contrast !== 1 || sat !== 1 || hue !== 0) jitter(out, bright, contrast, sat, hue);
    return out;
  }
  for (let oy = 0; oy < size; oy++) {
    for (let ox = 0; ox < size; ox++) {
      // output pixel centre -> crop coordinates (flip), relative to the crop centre
      let u = ((hflip ? size - 1 - ox : ox) + 0.5) * sx - box.w / 2;
      let v = ((vflip ? size - 1 - oy : oy) + 0.5) * sy - box.h / 2;
      if (angle) {
        const ru = cos * u - sin * v;
        const rv = sin * u + cos * v;
        u = ru;
        v = rv;
      }
      let x = cx + u - 0.5;
      let y = cy + v - 0.5;
      x = x < 0 ? 0 : x > max ? max : x;
      y = y < 0 ? 0 : y > max ? max : y;
      const x0 = Math.floor(x);
      const y0 = Math.floor(y);
      const x1 = x0 < max ? x0 + 1 : x0;
      const y1 = y0 < max ? y0 + 1 : y0;
      const fx = x - x0;
      const fy = y - y0;
      const i00 = (y0 * side + x0) * 3;
      const i01 = (y0 * side + x1) * 3;
      const i10 = (y1 * side + x0) * 3;
      const i11 = (y1 * side + x1) * 3;
      const o = (oy * size + ox) * 3;
      for (let c = 0; c < 3; c++) {
        const top = src[i00 + c] + (src[i01 + c] - src[i00 + c]) * fx;
        const bot = src[i10 + c] + (src[i11 + c] - src[i10 + c]) * fx;
        out[o + c] = top + (bot - top) * fy + 0.5;
      }
    }
  }
  if (bright !== 1 || contrast !== 1 || sat !== 1 || hue !== 0) jitter(out, bright, contrast, sat, hue);
  return out;
}

/** One axis of the sampling grid without rotation: source index pairs and weights per output index. */
function axisTaps(size: number, scale: number, extent: number, centre: number, flip: boolean, max: number): { i0: Int32Array; i1: Int32Array; f: Float64Array } {
  const i0 = new Int32Array(size);
  const i1 = new Int32Array(size);
  const f = new Float64Array(size);
  for (let o = 0; o < size; o++) {
    // The same arithmetic as the general path, so both give identical pixels.
    const u = ((flip ? size - 1 - o : o) + 0.5) * scale - extent / 2;
    let x = centre + u - 0.5;
    x = x < 0 ? 0 : x > max ? max : x;
    const x0 = Math.floor(x);
    i0[o] = x0;
    i1[o] = x0 < max ? x0 + 1 : x0;
    f[o] = x - x0;
  }
  return { i0, i1, f };
}

/**
 * Bilinear resampling of the crop when nothing rotates (the default augmentation): the grid
 * is separable, so each column's and row's taps are computed once instead of per pixel.
 */
function resampleAxisAligned(src: Uint8Array, side: number, size: number, out: Uint8Array, sx: number, sy: number, cx: number, cy: number, box: Crop, hflip: boolean, vflip: boolean): void {
  const max = side - 1;
  const xs = axisTaps(size, sx, box.w, cx, hflip, max);
  const ys = axisTaps(size, sy, box.h, cy, vflip, max);
  for (let oy = 0; oy < size; oy++) {
    const r0 = ys.i0[oy] * side;
    const r1 = ys.i1[oy] * side;
    const fy = ys.f[oy];
    let o = oy * size * 3;
    for (let ox = 0; ox < size; ox++, o += 3) {
      const fx = xs.f[ox];
      const i00 = (r0 + xs.i0[ox]) * 3;
      const i01 = (r0 + xs.i1[ox]) * 3;
      const i10 = (r1 + xs.i0[ox]) * 3;
      const i11 = (r1 + xs.i1[ox]) * 3;
      // Unrolled over the 3 channels (the hot loop of augmented loading).
      let a = src[i00];
      let t = a + (src[i01] - a) * fx;
      a = src[i10];
      out[o] = t + (a + (src[i11] - a) * fx - t) * fy + 0.5;
      a = src[i00 + 1];
      t = a + (src[i01 + 1] - a) * fx;
      a = src[i10 + 1];
      out[o + 1] = t + (a + (src[i11 + 1] - a) * fx - t) * fy + 0.5;
      a = src[i00 + 2];
      t = a + (src[i01 + 2] - a) * fx;
      a = src[i10 + 2];
      out[o + 2] = t + (a + (src[i11 + 2] - a) * fx - t) * fy + 0.5;
    }
  }
}

/** Colour jitter in torchvision's order: brightness, contrast, saturation, hue. */
function jitter(px: Uint8Array, bright: number, contrast: number, sat: number, hue: number): void {
  let mean = 0;
  for (let i = 0; i < px.length; i += 3) mean += 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
  mean = (mean / (px.length / 3)) * bright;
  const m = hue ? hueMatrix(hue) : null;
  for (let i = 0; i < px.length; i += 3) {
    let r = px[i] * bright;
    let g = px[i + 1] * bright;
    let b = px[i + 2] * bright;
    r = (r - mean) * contrast + mean;
    g = (g - mean) * contrast + mean;
    b = (b - mean) * contrast + mean;
    const grey = 0.299 * r + 0.587 * g + 0.114 * b;
    r = grey + (r - grey) * sat;
    g = grey + (g - grey) * sat;
    b = grey + (b - grey) * sat;
    if (m) {
      const nr = m[0] * r + m[1] * g + m[2] * b;
      const ng = m[3] * r + m[4] * g + m[5] * b;
      const nb = m[6] * r + m[7] * g + m[8] * b;
      r = nr;
      g = ng;
      b = nb;
    }
    px[i] = clamp255(r + 0.5);
    px[i + 1] = clamp255(g + 0.5);
    px[i + 2] = clamp255(b + 0.5);
  }
}
