import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { cacheSide, decodeSquare, isSrgbProfile, loadImageBufferForEval, probeImage, readJpegHeader } from '../../../src/main/dataset/decode';
import { centreCrop } from '../../../src/main/dataset/crop';
import { flatness, placeholderReason } from '../../../src/main/dataset/health';
import { MOBILENET_224, realJpeg } from './fixtures';

function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length;
}

/** A test card of mid-saturation colour bars (inside both gamuts, so a P3 -> sRGB conversion moves them visibly). */
async function bars(): Promise<Buffer> {
  const w = 300;
  const h = 200;
  const px = Buffer.alloc(w * h * 3);
  const colours = [[200, 100, 50], [60, 160, 90], [70, 90, 190], [180, 170, 60], [90, 170, 170], [200, 60, 120]];
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px.set(colours[Math.floor((x * colours.length) / w)], (y * w + x) * 3);
  return sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
}

test('sRGB profiles are recognised (their no-op conversion is skipped), others are not', async () => {
  const card = await bars();
  const srgb = await sharp(card).withIccProfile('srgb').jpeg({ quality: 95 }).toBuffer();
  const p3 = await sharp(card).withIccProfile('p3').jpeg({ quality: 95 }).toBuffer();
  const cmyk = await sharp(card).withIccProfile('cmyk').jpeg({ quality: 95 }).toBuffer();
  assert.equal(isSrgbProfile((await sharp(srgb).metadata()).icc), true);
  assert.equal(isSrgbProfile((await sharp(p3).metadata()).icc), false);
  assert.equal(isSrgbProfile((await sharp(cmyk).metadata()).icc), false);
  assert.equal(isSrgbProfile(undefined), false);
  assert.equal(isSrgbProfile(Buffer.from('not a profile at all, but long enough to be read as a header? no.'.repeat(4))), false);

  // A Display P3 image is still converted to sRGB: its stored numbers differ from the sRGB card's,
  // yet it decodes to the card's colours.
  const untagged = (await decodeSquare(await sharp(card).jpeg({ quality: 95 }).toBuffer(), 256)).pixels;
  const storedP3 = (await decodeSquare(await sharp(p3, { ignoreIcc: true }).png().toBuffer(), 256)).pixels;
  const fromP3 = (await decodeSquare(p3, 256)).pixels;
  assert.ok(meanAbsDiff(untagged, storedP3) > 5, `P3 numbers differ: ${meanAbsDiff(untagged, storedP3)}`);
  assert.ok(meanAbsDiff(untagged, fromP3) < 2, `P3 converted back: ${meanAbsDiff(untagged, fromP3)}`);
  // Tagged sRGB decodes like untagged.
  const fromSrgb = (await decodeSquare(srgb, 256)).pixels;
  assert.ok(meanAbsDiff(untagged, fromSrgb) < 1, `sRGB: ${meanAbsDiff(untagged, fromSrgb)}`);
});

test('readJpegHeader reads what sharp reads: size, EXIF orientation, ICC profile; anything else is left to sharp', async () => {
  const jpg = realJpeg('bees', 0);
  const cases = [
    jpg,
    realJpeg('ants', 1),
    await sharp(jpg).jpeg({ progressive: true }).toBuffer(),
    await sharp(jpg).withIccProfile('p3').jpeg().toBuffer(),
    ...(await Promise.all([3, 6, 8].map((o) => sharp(jpg).withMetadata({ orientation: o }).jpeg().toBuffer()))),
  ];
  for (const bytes of cases) {
    const h = readJpegHeader(bytes)!;
    const m = await sharp(bytes).metadata();
    assert.deepEqual([h.width, h.height, h.components, h.orientation], [m.width, m.height, m.channels, m.orientation ?? 1]);
    assert.deepEqual(h.icc, m.icc ? Buffer.from(m.icc) : undefined);
    const rotated = (m.orientation ?? 1) >= 5;
    assert.deepEqual(await probeImage(bytes), { format: 'jpeg', width: rotated ? m.height : m.width, height: rotated ? m.width : m.height });
  }
  assert.equal(readJpegHeader(await sharp(jpg).png().toBuffer()), null);
  assert.equal(readJpegHeader(jpg.subarray(0, 40)), null, 'cut before the frame header');
  assert.equal(readJpegHeader(Buffer.from('not a jpeg')), null);
  assert.deepEqual(await probeImage(await sharp(jpg).resize(20, 15).png().toBuffer()), { format: 'png', width: 20, height: 15 });
});

test('a JPEG profile converted after the resize matches the full-size conversion', async () => {
  // JPEGs take the one-call path (convert on the square); the same P3 picture as a PNG is
  // converted before resizing. Photos, not flat bars, so the resize really mixes colours.
  const photo = await sharp(realJpeg('bees', 1)).resize(500, 375).png().toBuffer();
  const p3Jpeg = await sharp(photo).withIccProfile('p3').jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).toBuffer();
  const p3Png = await sharp(p3Jpeg).keepIccProfile().png().toBuffer(); // same numbers, same profile
  const fast = (await decodeSquare(p3Jpeg, 256)).pixels;
  const general = (await decodeSquare(p3Png, 256)).pixels;
  const stored = (await decodeSquare(await sharp(p3Jpeg, { ignoreIcc: true }).png().toBuffer(), 256)).pixels;
  assert.ok(meanAbsDiff(fast, general) < 1, `after vs before the resize: ${meanAbsDiff(fast, general)}`);
  assert.ok(meanAbsDiff(fast, stored) > 3, `and the profile was applied: ${meanAbsDiff(fast, stored)}`);
});

test('decodeSquare: S x S x 3 cover of a real photo with its size and format; eval view is its centre crop', async () => {
  const jpg = realJpeg('bees', 0);
  const meta = await sharp(jpg).metadata();
  const side = cacheSide(MOBILENET_224);
  assert.equal(side, 256);
  const { pixels, info } = await decodeSquare(jpg, side);
  assert.equal(pixels.length, side * side * 3);
  assert.deepEqual(info, { format: 'jpeg', width: meta.width, height: meta.height });
  assert.deepEqual(await loadImageBufferForEval(jpg, MOBILENET_224), centreCrop(pixels, side, 224));
  // A tiny image is scaled up to the square, not refused.
  const tiny = await sharp(jpg).resize(20, 15).png().toBuffer();
  const t = await decodeSquare(tiny, side);
  assert.equal(t.pixels.length, side * side * 3);
  assert.deepEqual([t.info.width, t.info.height], [20, 15]);
});

test('flatness tells a blank card from a photo', async () => {
  const photo = flatness((await decodeSquare(realJpeg('ants', 0), 256)).pixels);
  assert.ok(photo.dominantShare < 0.75 && photo.colours > 100, JSON.stringify(photo));
  assert.equal(placeholderReason('train/ants/x.jpg', photo), null);
  const card = new Uint8Array(256 * 256 * 3).fill(240);
  for (let i = 0; i < 3000; i++) card[i] = 30; // a line of dark text
  const flat = flatness(card);
  assert.ok(flat.dominantShare > 0.9 && flat.colours <= 3, JSON.stringify(flat));
  assert.match(placeholderReason('train/ants/x.jpg', flat)!, /one flat colour/);
  assert.match(placeholderReason('a/image_not_found.png', photo)!, /suggests a placeholder/);
});
