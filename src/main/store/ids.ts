/** Ids that sort by creation time and are unique across processes: `r-<ms base36>-<random>`. */
import crypto from 'node:crypto';

function randomBase36(n: number): string {
  const bytes = crypto.randomBytes(n);
  let s = '';
  for (const b of bytes) s += (b % 36).toString(36);
  return s;
}

/** A new id with a one-letter prefix, e.g. newId('r') -> 'r-m1abc2def-x7k2q9'. */
export function newId(prefix: string, now = Date.now()): string {
  return `${prefix}-${now.toString(36).padStart(9, '0')}-${randomBase36(6)}`;
}
