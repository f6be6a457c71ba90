/**
 * Decoding with sharp, the one place pixels come from: EXIF orientation applied, alpha
 * flattened onto white, grey and 16-bit images turned into 8-bit sRGB, then resized so the
 * shorter side is S and the centre S x S kept. The eval view is the centre `size` crop of
 * that, i.e. exactly "resize shorter side to size / cropFraction, centre crop size".
 */
import sharp from 'sharp';
import type { Preprocessing } from '../../shared/preprocessing';

/** How decoding is run (the bench records these with its numbers). */
export const DECODE_SETTINGS = {
  /** Images decoded at once by import and ImageSource (each on a libuv thread). */
  pool: 4,
  /** libvips threads per image: parallelism comes from the pool, so 1 keeps 2 cores from oversubscribing. */
  vipsThreadsPerImage: 1,
  kernel: 'linear' as const,
};

sharp.concurrency(DECODE_SETTINGS.vipsThreadsPerImage);
sharp.cache(false);

/** Side of the square stored in the decode cache for a preprocessing. */
export function cacheSide(p: Pick<Preprocessing, 'size' | 'cropFraction'>): number {
  return Math.round(p.size / p.cropFraction);
}

export interface DecodeInfo {
  format: string;
  width: number;
  height: number;
}

/**
 * True when an embedded ICC profile describes sRGB itself (cameras and editors embed
 * "sRGB IEC61966-2.1" in many photos). Converting such an image to sRGB changes pixels by
 * well under one level but costs as much as decoding it, so it is skipped; any other
 * profile (Display P3, Adobe RGB, linear) is still converted.
 */
export function isSrgbProfile(icc: Uint8Array | undefined): boolean {
  if (!icc || icc.length < 132) return false;
  const dv = new DataView(icc.buffer, icc.byteOffset, icc.byteLength);
  if (dv.getUint32(16) !== 0x52474220) return false; // data colour space 'RGB '
  const count = dv.getUint32(128);
  for (let i = 0; i < count && 132 + 12 * (i + 1) <= icc.length; i++) {
    if (dv.getUint32(132 + 12 * i) !== 0x64657363) continue; // the 'desc' tag
    const offset = dv.getUint32(136 + 12 * i);
    const size = dv.getUint32(140 + 12 * i);
    if (offset + size > icc.length) return false;
    // v2 'desc' holds ASCII, v4 'mluc' UTF-16BE: dropping NULs reads both.
    const text = Buffer.from(icc.subarray(offset, offset + size)).toString('latin1').replace(/\0/g, '');
    return /\bsRGB\b/.test(text) && !/linear/i.test(text);
  }
  return false;
}

/**
 * Decode `input` (a path or bytes) to an S x S x 3 uint8 buffer. Truncated or corrupt
 * files throw (failOn 'truncated'), so the caller can skip them with a reason.
 */
export async function decodeSquare(input: string | Buffer, side: number): Promise<{ pixels: Uint8Array; info: DecodeInfo }> {
  const options = { failOn: 'truncated', pages: 1, limitInputPixels: 2 ** 28 } as const;
  const meta = await sharp(input, options).metadata();
  const { data } = await sharp(input, { ...options, ignoreIcc: isSrgbProfile(meta.icc) })
    .rotate() // EXIF orientation
    .flatten({ background: '#ffffff' })
    .toColourspace('srgb')
    .resize(side, side, { fit: 'cover', position: 'centre', kernel: DECODE_SETTINGS.kernel })
    .removeAlpha()
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  if (data.length !== side * side * 3) throw new Error(`decoded to ${data.length} bytes, expected ${side * side * 3}`);
  const oriented = (meta.orientation ?? 1) >= 5;
  return {
    pixels: new Uint8Array(data.buffer, data.byteOffset, data.length),
    info: { format: meta.format ?? 'unknown', width: (oriented ? meta.height : meta.width) ?? 0, height: (oriented ? meta.width : meta.height) ?? 0 },
  };
}

/** The centre `size` x `size` crop of an S x S x 3 image. */
export function centreCrop(square: Uint8Array, side: number, size: number): Uint8Array {
  if (side === size) return square;
  return centreCropInto(square, side, size, new Uint8Array(size * size * 3), 0);
}

/** The centre crop written straight into a batch buffer at `offset` (no intermediate copy). */
export function centreCropInto(square: Uint8Array, side: number, size: number, out: Uint8Array, offset: number): Uint8Array {
  const off = Math.floor((side - size) / 2);
  for (let y = 0; y < size; y++) {
    const src = ((y + off) * side + off) * 3;
    out.set(square.subarray(src, src + size * 3), offset + y * size * 3);
  }
  return out;
}

/** Eval view of one image file, for prediction and the export's parity check. */
export async function loadImageForEval(filePath: string, p: Preprocessing): Promise<Uint8Array> {
  const side = cacheSide(p);
  return centreCrop((await decodeSquare(filePath, side)).pixels, side, p.size);
}

/** Eval view of image bytes (drag and drop in the GUI). */
export async function loadImageBufferForEval(bytes: Buffer, p: Preprocessing): Promise<Uint8Array> {
  const side = cacheSide(p);
  return centreCrop((await decodeSquare(bytes, side)).pixels, side, p.size);
}

/** Encode RGB pixels as a PNG or JPEG data URL (previews, thumbnails). */
export async function toDataUrl(pixels: Uint8Array, width: number, height: number, format: 'png' | 'jpeg' = 'png'): Promise<string> {
  const img = sharp(Buffer.from(pixels.buffer, pixels.byteOffset, pixels.length), { raw: { width, height, channels: 3 } });
  const buf = format === 'png' ? await img.png().toBuffer() : await img.jpeg({ quality: 80 }).toBuffer();
  return `data:image/${format};base64,${buf.toString('base64')}`;
}
