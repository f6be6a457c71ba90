import { test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import fs from 'node:fs';
import path from 'node:path';
import { wasmDistDir } from '../../../src/main/engine/backend';
import { shortenPoolSpin } from '../../../src/main/engine/kernels/wasm-threads';

const workerFile = new URL('./kernels-threads-worker.ts', import.meta.url);

/**
 * Runs initBackend in a fresh worker_thread (the engine trains in one) and reports what
 * it saw. The test process never initialises tfjs itself, so each run starts clean.
 */
function runInWorker(env: Record<string, string>): Promise<{ report: { name: string; threads: number; skipped: { name: string; reason: string }[] }; restored: boolean; product: number; code: number }> {
  return new Promise((resolve, reject) => {
    // Node 20 workers ignore --import loader flags, so the worker registers tsx itself.
    const boot = `import('tsx/esm/api').then((api) => { api.register(); return import(${JSON.stringify(workerFile.href)}); })`;
    const worker = new Worker(boot, { eval: true, env: { ...process.env, ...env } });
    let message: Record<string, unknown> | undefined;
    worker.on('message', (m) => {
      message = m;
    });
    worker.on('error', reject);
    // The worker must exit by itself: pool threads may not keep it alive.
    worker.on('exit', (exitCode) => {
      if (!message) return reject(new Error(`worker exited (${exitCode}) without a result`));
      if (message.error) return reject(new Error(String(message.error)));
      resolve({ ...(message as object), code: exitCode } as never);
    });
  });
}

test('threaded wasm starts one XNNPACK thread per core inside a worker_thread, restores its patches and exits cleanly', async () => {
  const cores = Math.min(8, os.cpus().length);
  const result = await runInWorker({ FINETUNE_THREADS: '' });
  assert.equal(result.code, 0);
  assert.equal(result.report.name, 'wasm');
  const fallback = result.report.skipped.find((s) => s.name.startsWith('wasm with'));
  assert.equal(fallback, undefined, `unexpected fallback: ${fallback?.reason}`);
  assert.equal(result.report.threads, cores);
  assert.equal(result.restored, true, 'os.cpus, URL.createObjectURL, Blob and the flag are restored');
  assert.equal(result.product, 256);
});

test('FINETUNE_THREADS=1 uses the single-threaded build', async () => {
  const result = await runInWorker({ FINETUNE_THREADS: '1' });
  assert.equal(result.code, 0);
  assert.equal(result.report.threads, 1);
  assert.equal(result.product, 256);
});

test('the pool-spin patch finds its one site in the shipped threaded binary and rewrites only that constant', () => {
  const file = path.join(wasmDistDir(), 'tfjs-backend-wasm-threaded-simd.wasm');
  const binary = fs.readFileSync(file);
  const patched = shortenPoolSpin(binary, 50_000);
  assert.ok(patched, 'spin site found exactly once');
  assert.equal(patched.length, binary.length);
  const changed = [...patched].flatMap((b, i) => (b === binary[i] ? [] : [i]));
  assert.ok(changed.length === 3 && changed[2] - changed[0] === 2, `only the constant changed: ${changed}`);
  // Three-byte LEB128 of 50,000 where 1,000,000 was, and the result still validates.
  assert.deepEqual([...patched.subarray(changed[0], changed[0] + 3)], [0xd0, 0x86, 0x03]);
  assert.ok(WebAssembly.validate(patched));
  // A binary without the site (or with two) is left alone.
  assert.equal(shortenPoolSpin(new Uint8Array(100)), null);
  const site = binary.subarray(changed[0] - 12, changed[0] + 11);
  assert.equal(shortenPoolSpin(Buffer.concat([site, site])), null);
});
