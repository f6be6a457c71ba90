/**
 * A small seeded random generator whose whole state is one 32-bit number, so a checkpoint
 * can store it and a resumed run draws exactly the numbers the uninterrupted run would have.
 * Math.random is never used by the engine: same seed + same backend = same metrics.
 */
export class Rng {
  private s: number;

  constructor(seed: number) {
    // Mix the seed so that nearby seeds (0, 1, 2) give unrelated streams.
    this.s = hash32(seed >>> 0) || 0x9e3779b9;
  }

  /** Uniform in [0, 1) (mulberry32). */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** A seed for tf ops that take one (dropout, initialisers), drawn from this stream. */
  seed(): number {
    return this.int(2 ** 31);
  }

  /** In-place Fisher-Yates shuffle. */
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  }

  get state(): number {
    return this.s;
  }

  set state(v: number) {
    this.s = v >>> 0;
  }
}

/** A 32-bit integer hash (lowbias32), used to derive independent streams from (seed, tag). */
export function hash32(x: number): number {
  x = x >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** An Rng for one purpose within a run, e.g. `derivedRng(seed, 'shuffle', epoch)`. */
export function derivedRng(seed: number, tag: string, n = 0): Rng {
  let h = hash32(seed);
  for (let i = 0; i < tag.length; i++) h = hash32(h ^ tag.charCodeAt(i));
  return new Rng(hash32(h ^ hash32(n + 1)));
}
