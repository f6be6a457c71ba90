import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { resolveModelFolder, isCompleteModelFolder } from '../../../src/main/engine/backbones/resolve';
import { findBackbone } from '../../../src/main/engine/backbones/registry';
import { modelsMirror, tempDir } from '../../helpers/paths';

const rel = findBackbone('mobilenet_v2_0.35_224')!.relDir;

/** Serve a folder over HTTP on loopback, counting requests: a stand-in for a URL mirror. */
async function serveFolder(root: string, opts: { corrupt?: boolean } = {}) {
  let requests = 0;
  const server = http.createServer((req, res) => {
    requests++;
    const file = path.join(root, decodeURIComponent(new URL(req.url!, 'http://x').pathname));
    if (!file.startsWith(root) || !fs.existsSync(file)) return res.writeHead(404).end();
    let body = fs.readFileSync(file);
    if (opts.corrupt && file.endsWith('.bin')) body = body.subarray(0, body.length - 100);
    res.writeHead(200).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return { base, count: () => requests, close: () => new Promise<void>((r) => server.close(() => r())) };
}

test('a mirror folder laid out like the canonical location is used in place, offline', async () => {
  const cache = tempDir();
  const r = await resolveModelFolder(rel, { cacheDir: cache, mirrors: [modelsMirror], canonicalBase: 'http://127.0.0.1:9/' });
  assert.equal(r.source, modelsMirror);
  assert.equal(r.modelJson, path.join(modelsMirror, rel, 'model.json'));
  assert.ok(isCompleteModelFolder(r.modelJson));
});

test('a URL mirror is downloaded into the cache once, then the cache answers', async () => {
  const cache = tempDir();
  const srv = await serveFolder(modelsMirror);
  try {
    const first = await resolveModelFolder(rel, { cacheDir: cache, mirrors: ['/nonexistent/mirror', srv.base] });
    assert.equal(first.source, srv.base);
    assert.equal(first.modelJson, path.join(cache, rel, 'model.json'));
    assert.ok(isCompleteModelFolder(first.modelJson));
    const n = srv.count();
    const second = await resolveModelFolder(rel, { cacheDir: cache, mirrors: [srv.base] });
    assert.equal(second.source, 'cache');
    assert.equal(srv.count(), n, 'no request once cached');
  } finally {
    await srv.close();
  }
});

test('a truncated download is rejected and leaves nothing in the cache', async () => {
  const cache = tempDir();
  const srv = await serveFolder(modelsMirror, { corrupt: true });
  try {
    await assert.rejects(resolveModelFolder(rel, { cacheDir: cache, mirrors: [srv.base] }), /do not match the sizes/);
    assert.equal(fs.existsSync(path.join(cache, rel)), false);
    assert.deepEqual(fs.readdirSync(path.join(cache, path.dirname(rel))).filter((f) => f.includes('partial')), []);
  } finally {
    await srv.close();
  }
});

test('a checksum mismatch is rejected', async () => {
  const cache = tempDir();
  const srv = await serveFolder(modelsMirror);
  try {
    await assert.rejects(
      resolveModelFolder(rel, { cacheDir: cache, mirrors: [srv.base], sha256: { 'model.json': '0'.repeat(64) } }),
      /checksum mismatch/,
    );
  } finally {
    await srv.close();
  }
});

test('when nothing has it, the error lists every place tried and what to do', async () => {
  const cache = tempDir();
  await assert.rejects(
    resolveModelFolder(rel, { cacheDir: cache, mirrors: ['/nonexistent/mirror'], canonicalBase: 'http://127.0.0.1:9/' }),
    (err: Error) => {
      assert.match(err.message, /was not found/);
      assert.match(err.message, /nonexistent\/mirror/);
      assert.match(err.message, /127\.0\.0\.1:9/);
      assert.match(err.message, /--models-mirror/);
      return true;
    },
  );
  await assert.rejects(resolveModelFolder('../etc', { cacheDir: cache, mirrors: [] }), /must not contain/);
});
