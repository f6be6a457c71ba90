/** Worker side of kernels-threads.test.ts: initialise the backend and report what happened. */
import fs from 'node:fs';
import os from 'node:os';
import { parentPort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../src/main/engine/backend';

const realCpus = os.cpus().length;
const createObjectURL = URL.createObjectURL;
const OriginalBlob = globalThis.Blob;
const readFileSync = fs.readFileSync;
try {
  // Two callers at once (the engine worker's warm-up and its first job) share one initialisation.
  const [report, again] = await Promise.all([initBackend({ prefer: 'wasm' }), initBackend({ prefer: 'wasm' })]);
  if (again !== report) throw new Error('concurrent initBackend calls initialised twice');
  const restored = os.cpus().length === realCpus && URL.createObjectURL === createObjectURL && globalThis.Blob === OriginalBlob && fs.readFileSync === readFileSync && tf.env().get('WASM_HAS_MULTITHREAD_SUPPORT') === false;
  // Big enough to use the pool: an all-ones 256x256 squared is 256 everywhere.
  const a = tf.ones([256, 256]);
  const product = tf.matMul(a, a).dataSync()[1000];
  parentPort!.postMessage({ report, restored, product });
} catch (err) {
  parentPort!.postMessage({ error: String((err as Error).stack ?? err) });
}
