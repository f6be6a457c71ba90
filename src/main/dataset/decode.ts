/**
 * Decoding with sharp, the one place pixels come from: EXIF orientation applied, alpha
 * flattened onto white, grey and 16-bit images turned into 8-bit sRGB, then resized so the
 * shorter side is S and the centre S x S kept. The eval view is the centre `size` crop of
 * that, i.e. exactly "resize shorter side to size / cropFraction, centre crop size".
 */
import fs from 'node:fs';
import sharp, { type Sharp } from 'sharp';
import type { Preprocessing } from '../../shared/preprocessing';
import { centreCrop } from './crop';

/** How decoding is run (the bench records these with its numbers). */
export const DECODE_SETTINGS = {
  /** Images decoded at once by import and ImageSource (each on a libuv thread). */
  pool: 4,
  /** libvips threads per image: parallelism comes from the pool, so 1 keeps 2 cores from oversubscribing. */
  vipsThreadsPerImage: 1,
  kernel: 'linear' as const,
  /** Stream the decode into the resize instead of decoding the whole image to memory first. */
  sequentialRead: true,
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

/** What a JPEG's header says, read without sharp (a sharp call costs ~0.5 ms even for metadata). */
export interface JpegHeader {
  width: number;
  height: number;
  components: number;
  precision: number;
  /** EXIF orientation (1-8) of IFD0, 1 when absent. */
  orientation: number;
  /** The embedded ICC profile (APP2 chunks joined), if any. */
  icc?: Buffer;
}

/** The EXIF IFD0 orientation in an APP1 body (after "Exif\0\0"), 1 when absent, null when unreadable. */
function exifOrientation(tiff: Buffer): number | null {
  if (tiff.length < 8) return null;
  const le = tiff[0] === 0x49 && tiff[1] === 0x49;
  if (!le && !(tiff[0] === 0x4d && tiff[1] === 0x4d)) return null;
  const u16 = (o: number) => (le ? tiff.readUInt16LE(o) : tiff.readUInt16BE(o));
  const ifd = le ? tiff.readUInt32LE(4) : tiff.readUInt32BE(4);
  if (u16(2) !== 42 || ifd + 2 > tiff.length) return null;
  const n = u16(ifd);
  if (ifd + 2 + 12 * n > tiff.length) return null;
  for (let e = ifd + 2; e < ifd + 2 + 12 * n; e += 12) {
    if (u16(e) !== 0x0112) continue;
    if (u16(e + 2) !== 3) return null; // not a SHORT: leave it to libvips
    const v = u16(e + 8);
    return v >= 1 && v <= 8 ? v : 1; // libvips treats out-of-range values as 1
  }
  return 1;
}

/**
 * The size, orientation and ICC profile of a baseline/progressive JPEG from its markers, or
 * null when it is not a JPEG or anything is unusual (then sharp's metadata() is asked).
 */
export function readJpegHeader(bytes: Buffer): JpegHeader | null {
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8) return null;
  let sof: Omit<JpegHeader, 'orientation' | 'icc'> | null = null;
  let orientation = 1;
  let exifSeen = false;
  const icc: Buffer[] = [];
  let i = 2;
  while (i + 4 <= bytes.length) {
    if (bytes[i] !== 0xff) return null;
    const marker = bytes[i + 1];
    if (marker === 0xff) {
      i++; // fill byte
      continue;
    }
    if (marker === 0xda || marker === 0xd9) break; // start of scan / end of image: the header is over
    if ((marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      i += 2;
      continue;
    }
    const len = bytes.readUInt16BE(i + 2);
    const body = bytes.subarray(i + 4, i + 2 + len);
    if (len < 2 || i + 2 + len > bytes.length) return null;
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (sof || body.length < 6) return null;
      sof = { precision: body[0], height: body.readUInt16BE(1), width: body.readUInt16BE(3), components: body[5] };
    } else if (marker === 0xe1 && body.length >= 6 && body.toString('latin1', 0, 6) === 'Exif\0\0') {
      // libvips attaches every Exif block it meets (the last wins); one is the normal case.
      if (exifSeen) return null;
      exifSeen = true;
      const o = exifOrientation(body.subarray(6));
      if (o === null) return null;
      orientation = o;
    } else if (marker === 0xe2 && body.length > 14 && body.toString('latin1', 0, 12) === 'ICC_PROFILE\0') {
      // Chunks numbered 1..n in order, as libvips joins them in the order met.
      if (body[12] !== icc.length + 1) return null;
      icc.push(body.subarray(14));
    }
    i += 2 + len;
  }
  if (!sof || !sof.width || !sof.height) return null;
  return { ...sof, orientation, icc: icc.length ? Buffer.concat(icc) : undefined };
}

/** The colour space an ICC profile's pixels are in ('RGB ', 'GRAY', 'CMYK', ...). */
function iccDataSpace(icc: Uint8Array): string {
  return icc.length >= 20 ? Buffer.from(icc.buffer, icc.byteOffset + 16, 4).toString('latin1') : '';
}

const DECODE_OPTIONS = { failOn: 'truncated', pages: 1, limitInputPixels: 2 ** 28, sequentialRead: DECODE_SETTINGS.sequentialRead } as const;
const RESIZE = { fit: 'cover', position: 'centre', kernel: DECODE_SETTINGS.kernel } as const;

/** Format and upright size of an image, as the report gives them (the JPEG header alone when it can). */
export async function probeImage(bytes: Buffer): Promise<DecodeInfo> {
  const jpeg = readJpegHeader(bytes);
  if (jpeg) return jpegInfo(jpeg);
  const m = await sharp(bytes).metadata();
  const rotated = (m.orientation ?? 1) >= 5;
  return { format: m.format ?? 'unknown', width: (rotated ? m.height : m.width) ?? 0, height: (rotated ? m.width : m.height) ?? 0 };
}

function jpegInfo(h: JpegHeader): DecodeInfo {
  const rotated = h.orientation >= 5;
  return { format: 'jpeg', width: rotated ? h.height : h.width, height: rotated ? h.width : h.height };
}

/**
 * Decode `input` (a path or bytes) to an S x S x 3 uint8 buffer. Truncated or corrupt
 * files throw (failOn 'truncated'), so the caller can skip them with a reason.
 *
 * 8-bit colour JPEGs (nearly every photo) take one sharp call: their header is read here.
 * An embedded profile other than sRGB is applied after the resize (as libvips' own
 * thumbnailer does): the same conversion on the 256 x 256 square instead of the full
 * image. Other images (PNG, grey, CMYK, 16-bit, ...) ask sharp for metadata first and are
 * converted before resizing.
 */
export async function decodeSquare(input: string | Buffer, side: number): Promise<{ pixels: Uint8Array; info: DecodeInfo }> {
  const bytes = typeof input === 'string' ? await fs.promises.readFile(input) : input;
  const jpeg = readJpegHeader(bytes);
  let pipeline: Sharp;
  let info: DecodeInfo;
  if (jpeg && jpeg.components === 3 && jpeg.precision === 8) {
    info = jpegInfo(jpeg);
    const srgb = isSrgbProfile(jpeg.icc);
    const convertAfterResize = !!jpeg.icc && !srgb && iccDataSpace(jpeg.icc) === 'RGB ';
    // No alpha, already 8-bit RGB: rotate (a no-op unless EXIF says so) and resize are all it needs.
    pipeline = sharp(bytes, { ...DECODE_OPTIONS, ignoreIcc: srgb || convertAfterResize })
      .rotate()
      .resize(side, side, RESIZE);
    if (convertAfterResize) pipeline = pipeline.withIccProfile('srgb');
  } else {
    const meta = await sharp(bytes, DECODE_OPTIONS).metadata();
    const oriented = (meta.orientation ?? 1) >= 5;
    info = { format: meta.format ?? 'unknown', width: (oriented ? meta.height : meta.width) ?? 0, height: (oriented ? meta.width : meta.height) ?? 0 };
    pipeline = sharp(bytes, { ...DECODE_OPTIONS, ignoreIcc: isSrgbProfile(meta.icc) })
      .rotate() // EXIF orientation
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb')
      .resize(side, side, RESIZE)
      .removeAlpha();
  }
  const data = await pipeline.raw({ depth: 'uchar' }).toBuffer();
  if (data.length !== side * side * 3) throw new Error(`decoded to ${data.length} bytes, expected ${side * side * 3}`);
  return { pixels: new Uint8Array(data.buffer, data.byteOffset, data.length), info };
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
