/**
 * Preprocessing is a property of the backbone, never a user choice: the data pipeline,
 * evaluation, prediction and exports all read it from here, so train and serve can't disagree.
 */
export type Scaling =
  /** x / 127.5 - 1: MobileNet family (Keras `preprocess_input` mode "tf"). */
  | { kind: 'minus-one-to-one' }
  /** x / 255. */
  | { kind: 'zero-to-one' }
  /** (x / 255 - mean) / std per channel: torchvision / ImageNet style. */
  | { kind: 'mean-std'; mean: [number, number, number]; std: [number, number, number] };

export interface Preprocessing {
  /** Square input side in pixels fed to the network. */
  size: number;
  /** Eval: resize the shorter side to round(size / cropFraction), then centre crop `size`. */
  cropFraction: number;
  /** Train: random resized crop to `size` (scale and ratio come from the augmentation config). */
  trainCrop: 'random-resized-crop';
  scaling: Scaling;
  channels: 3;
}

export const MINUS_ONE_TO_ONE: Scaling = { kind: 'minus-one-to-one' };
export const IMAGENET_MEAN_STD: Scaling = { kind: 'mean-std', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/** Per-channel affine map `x * mul + add` that applies a scaling to uint8 pixels. */
export function scalingAffine(s: Scaling): { mul: [number, number, number]; add: [number, number, number] } {
  if (s.kind === 'minus-one-to-one') return { mul: [1 / 127.5, 1 / 127.5, 1 / 127.5], add: [-1, -1, -1] };
  if (s.kind === 'zero-to-one') return { mul: [1 / 255, 1 / 255, 1 / 255], add: [0, 0, 0] };
  const mul = s.std.map((sd) => 1 / (255 * sd)) as [number, number, number];
  const add = s.mean.map((m, i) => -m / s.std[i]) as [number, number, number];
  return { mul, add };
}

/**
 * The scaled value of every uint8 level per channel (channel c's value v at c * 256 + v):
 * the same float32 each pixel would get from computing `v * mul + add` itself.
 */
export function scalingTable(scaling: Scaling): Float32Array {
  const { mul, add } = scalingAffine(scaling);
  const table = new Float32Array(768);
  for (let c = 0; c < 3; c++) for (let v = 0; v < 256; v++) table[c * 256 + v] = v * mul[c] + add[c];
  return table;
}

/** Scale uint8 NHWC pixels through a scalingTable. */
export function scaleThroughTable(pixels: Uint8Array, table: Float32Array): Float32Array {
  const out = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i += 3) {
    out[i] = table[pixels[i]];
    out[i + 1] = table[256 + pixels[i + 1]];
    out[i + 2] = table[512 + pixels[i + 2]];
  }
  return out;
}
