/**
 * The decode cache: each image decoded once into an S x S x 3 uint8 file keyed by its
 * content hash and S, so epochs after the first never decode a JPEG again. Files are
 * written to a temp name and renamed, so a crash never leaves a torn entry; memory holds
 * only what a batch needs.
 */
import fs from 'node:fs';
import path from 'node:path';

/**
 * Bump whenever decoding changes its pixels (kernel, colour handling, crop): entries made by
 * another decoder would make cached training/evaluation disagree with a fresh decode (and
 * fail the export's parity check), so each decoder version gets its own folder.
 */
export const DECODER_VERSION = 3; // 3: JPEGs with a non-sRGB RGB profile converted after the resize

export class DecodeCache {
  constructor(
    readonly dir: string,
    readonly side: number,
  ) {}

  /** Where the entry for `hash` lives (whether or not it exists yet). */
  file(hash: string): string {
    return path.join(this.dir, `v${DECODER_VERSION}`, String(this.side), hash.slice(0, 2), `${hash}.rgb`);
  }

  get(hash: string): Uint8Array | null {
    const f = this.file(hash);
    // A miss is the rule on a first import: asking first is far cheaper than a thrown ENOENT.
    if (!fs.existsSync(f)) return null;
    try {
      const buf = fs.readFileSync(f);
      if (buf.length !== this.side * this.side * 3) return null;
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
    } catch {
      return null;
    }
  }

  has(hash: string): boolean {
    return fs.existsSync(this.file(hash));
  }

  put(hash: string, pixels: Uint8Array): void {
    const f = this.file(hash);
    const tmp = `${f}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    try {
      fs.writeFileSync(tmp, pixels);
    } catch (err) {
      // Folders are made when a write finds them missing (a mkdir per put cost as much as the write).
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      fs.mkdirSync(path.dirname(f), { recursive: true });
      fs.writeFileSync(tmp, pixels);
    }
    fs.renameSync(tmp, f);
  }
}

/** Run `fn` over `items` with at most `limit` in flight; results in input order. */
export async function mapPool<T, R>(items: T[], limit: number, fn: (item: T, index: number) => Promise<R>, signal?: AbortSignal): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      if (signal?.aborted) return;
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
