/**
 * The sparse 1x1-conv gradients (src/main/engine/kernels/sparse-grad.ts) against our dense
 * GEMM, on one thread, at the shape where they matter: MobileNetV2 alpha 0.35's last conv
 * at batch 16 (dz [784, 1280], 112 input channels). First the share of dz that a real
 * ReLU6 mask leaves non-zero (hymenoptera photos, the real backbone), then, for synthetic
 * masks of several shares: the input gradient, the filter gradient (each with a fresh
 * compression) and the GEMM each replaces. Minimum and median of 40 calls (the host's speed
 * drifts; the minimum is the kernel's own cost). Writes bench/results/sparse-grads.json.
 *
 *   flock /tmp/bench.lock node --import tsx bench/sparse-grads.ts
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/main/engine/backend';
import { BackendIO, type TensorInfo } from '../src/main/engine/kernels/backend-io';
import { gemm, gemmFor } from '../src/main/engine/kernels/gemm-simd';
import { noteMaskedShare, SPARSE_MAX_SHARE, sparseFilterGradT, sparseInputGrad } from '../src/main/engine/kernels/sparse-grad';
import { loadBackbone, type KerasBackbone } from '../src/main/engine/net/index';
import { hymenopteraBatch, MOBILENET_V2, PRE } from '../test/unit/engine/net-helpers';

process.env.FINETUNE_THREADS = '1';
const here = path.dirname(fileURLToPath(import.meta.url));
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const load = () => os.loadavg().map((x) => round(x));

const backend = await initBackend({ prefer: 'wasm' });
const io = new BackendIO(tf.backend(), 'wasm');
const info = (t: tf.Tensor): TensorInfo => ({ dataId: t.dataId, shape: t.shape, dtype: t.dtype });
const g = gemmFor(tf.backend())!;

/** Min and median ms of `fn` over 40 calls after 5 warm-up calls. */
function time(fn: () => void): { minMs: number; medianMs: number } {
  for (let i = 0; i < 5; i++) fn();
  const ts: number[] = [];
  for (let i = 0; i < 40; i++) {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
  }
  ts.sort((a, b) => a - b);
  return { minMs: round(ts[0]), medianMs: round(ts[20]) };
}

// The share a real ReLU6 leaves: the backbone's output is its last conv's ReLU6.
const net = (await loadBackbone(MOBILENET_V2, { id: 'mobilenet_v2_0.35_224', preprocessing: PRE })) as KerasBackbone;
const images = await hymenopteraBatch(16);
const out = net.forwardFrozen(images) as tf.Tensor;
const values = out.dataSync();
let inside = 0;
for (const v of values) if (v > 0 && v < 6) inside++;
const realShare = round(inside / values.length, 3);
tf.dispose([images, out]);

const [m, n, cin] = [784, 1280, 112];
const x = tf.randomNormal([m, cin], 0, 1, 'float32', 1);
const wt = tf.randomNormal([n, cin], 0, 1, 'float32', 2);
const rows: unknown[] = [];
for (const share of [0.05, 0.1, 0.2, 0.3]) {
  const dz = tf.tidy(() => tf.mul(tf.randomNormal([m, n], 0, 1, 'float32', 3), tf.cast(tf.less(tf.randomUniform([m, n], 0, 1, 'float32', 4), share), 'float32')));
  // A fresh dz (new dataId) per call, so each timing includes its compression.
  const fresh = () => {
    const d = tf.clone(dz);
    noteMaskedShare(d.dataId, share);
    return d;
  };
  const sparseInput = time(() => {
    const d = fresh();
    io.dispose(sparseInputGrad(io, info(d), info(wt), m, n, cin)!);
    d.dispose();
  });
  const sparseFilter = time(() => {
    const d = fresh();
    io.dispose(sparseFilterGradT(io, info(x), info(d), m, n, cin)!);
    d.dispose();
  });
  const dx = io.alloc([m, cin]);
  const dw = io.alloc([cin, n]);
  const denseInput = time(() => gemm(io, g, { a: info(dz), aRowStride: n, aColStride: 1, b: info(wt), ldb: cin, c: dx, ldc: cin, m, n: cin, k: n }));
  const denseFilter = time(() => gemm(io, g, { a: info(x), aRowStride: 1, aColStride: cin, b: info(dz), ldb: n, c: dw, ldc: n, m: cin, n, k: m }));
  io.dispose(dx);
  io.dispose(dw);
  dz.dispose();
  const row = { share, sparseInput, denseInput, sparseFilter, denseFilter, speedupMin: round((denseInput.minMs + denseFilter.minMs) / (sparseInput.minMs + sparseFilter.minMs)) };
  console.log(JSON.stringify(row));
  rows.push(row);
}
tf.dispose([x, wt]);

const report = {
  bench: 'sparse-grads',
  date: new Date().toISOString(),
  backend: backend.name,
  threads: 1,
  shape: { dz: [m, n], cin },
  realShareLastConv: realShare,
  sparseMaxShare: SPARSE_MAX_SHARE,
  machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, node: process.version, loadAverage: load() },
  rows,
};
fs.mkdirSync(path.join(here, 'results'), { recursive: true });
fs.writeFileSync(path.join(here, 'results', 'sparse-grads.json'), `${JSON.stringify(report, null, 2)}\n`);
console.log(`real share ${realShare}; wrote bench/results/sparse-grads.json`);
