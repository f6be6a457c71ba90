import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { DECODER_VERSION, DecodeCache } from '../../../src/main/dataset/cache';
import { tempDir } from './fixtures';

test('decode cache: a miss is null, a put is read back, folders are made (again) when missing, torn sizes are misses', () => {
  const dir = path.join(tempDir(), 'decoded');
  const cache = new DecodeCache(dir, 4);
  const hash = 'ab'.repeat(32);
  const pixels = Uint8Array.from({ length: 4 * 4 * 3 }, (_, i) => i);
  assert.equal(cache.get(hash), null);
  assert.equal(cache.has(hash), false);
  cache.put(hash, pixels);
  assert.deepEqual(cache.get(hash), pixels);
  assert.equal(cache.file(hash), path.join(dir, `v${DECODER_VERSION}`, '4', 'ab', `${hash}.rgb`));
  assert.deepEqual(fs.readdirSync(path.dirname(cache.file(hash))), [`${hash}.rgb`], 'no temp file left behind');

  // The whole cache removed under a live instance (the user cleared it): puts still land.
  fs.rmSync(dir, { recursive: true });
  assert.equal(cache.get(hash), null);
  cache.put(hash, pixels);
  assert.deepEqual(cache.get(hash), pixels);

  fs.writeFileSync(cache.file(hash), pixels.subarray(0, 10));
  assert.equal(cache.get(hash), null, 'a file of the wrong size is not an entry');
});
