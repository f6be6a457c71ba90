/** Centre crops of the decode cache's S x S squares (free of sharp, for the pixel thread). */

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
