/**
 * Decoding with sharp, the one place pixels come from: EXIF orientation applied, alpha
 * flattened onto white, grey and 16-bit images turned into 8-bit sRGB, then resized so the
 * shorter side is S and the centre S x S kept. The eval view is the centre `size` crop of
 * that, i.e. exactly "resize shorter side to size / cropFraction, centre crop size".
 */
import sharp from 'sharp';
import type { Preprocessing } from '../../shared/preprocessing';

// Decoding runs concurrently from our own pool; keep libvips from oversubscribing 2 cores.
sharp.concurrency(1);
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
 * Decode `input` (a path or bytes) to an S x S x 3 uint8 buffer. Truncated or corrupt
 * files throw (failOn 'truncated'), so the caller can skip them with a reason.
 */
export async function decodeSquare(input: string | Buffer, side: number): Promise<{ pixels: Uint8Array; info: DecodeInfo }> {
  const img = sharp(input, { failOn: 'truncated', pages: 1, limitInputPixels: 2 ** 28 });
  const meta = await img.metadata();
  const { data } = await img
    .rotate() // EXIF orientation
    .flatten({ background: '#ffffff' })
    .toColourspace('srgb')
    .resize(side, side, { fit: 'cover', position: 'centre', kernel: 'lanczos3' })
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
  const off = Math.floor((side - size) / 2);
  const out = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    const src = ((y + off) * side + off) * 3;
    out.set(square.subarray(src, src + size * 3), y * size * 3);
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
