/**
 * Picks the fastest tfjs backend that loads on this machine: tfjs-node-gpu, tfjs-node,
 * wasm, cpu, in that order, and remembers why the faster ones were skipped so `doctor`
 * and every run can report it. tfjs-node(-gpu) are optional dependencies whose native
 * library downloads at install time; offline they are present but cannot load.
 */
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { BackendReport } from '../../shared/contract';
import { registerTrainingKernels } from './kernels/index';
import { setGemmThreads } from './kernels/gemm-simd';
import { initWasmWithThreads, type WasmInitResult } from './kernels/wasm-threads';

const nodeRequire = createRequire(import.meta.url);

export type BackendName = 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_ORDER: BackendName[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

export interface BackendOptions {
  /** Force one backend (FINETUNE_BACKEND); the others are reported as "not requested". */
  prefer?: BackendName;
  /** wasm threads wanted; 0 = choose from the machine. */
  threads?: number;
}

let current: BackendReport | null = null;

function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0].slice(0, 300);
}

/**
 * tfjs-node registers its kernels on import even when its native binding is missing, then
 * throws; check for the binding first so a failed import leaves no half-registered backend.
 */
function assertNativeBinding(pkg: string): void {
  let dir: string;
  try {
    dir = path.dirname(nodeRequire.resolve(`${pkg}/package.json`));
  } catch {
    throw new Error(`${pkg} is not installed (optional dependency)`);
  }
  const libDir = path.join(dir, 'lib');
  const found = fs.existsSync(libDir) && fs.readdirSync(libDir).some((d) => d.startsWith('napi-v') && fs.existsSync(path.join(libDir, d, 'tfjs_binding.node')));
  if (!found) {
    throw new Error(`${pkg} is installed but its native library is missing (its install script downloads libtensorflow; it was blocked or offline). Reinstall it with network access to use it.`);
  }
}

async function tryNode(pkg: string): Promise<void> {
  assertNativeBinding(pkg);
  // The package registers the 'tensorflow' backend on import, or throws when its
  // libtensorflow binding is missing (install script blocked or offline).
  nodeRequire(pkg);
  if (!(await tf.setBackend('tensorflow'))) throw new Error(`${pkg} loaded but the 'tensorflow' backend did not initialise`);
}

/** Directory of the wasm binaries shipped in @tensorflow/tfjs-backend-wasm. */
export function wasmDistDir(): string {
  const main = nodeRequire.resolve('@tensorflow/tfjs-backend-wasm');
  // main points at dist/tf-backend-wasm.node.js (or similar) inside dist/.
  return path.dirname(main) + path.sep;
}

/** XNNPACK threads to ask for: the option, else FINETUNE_THREADS, else every core (at most 8). */
export function wantedThreads(requested?: number): number {
  const fromEnv = Number(process.env.FINETUNE_THREADS);
  const n = requested && requested > 0 ? requested : Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : os.cpus().length;
  return Math.max(1, Math.min(8, Math.floor(n)));
}

async function tryWasm(threads: number): Promise<WasmInitResult> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  wasm.setWasmPaths(wasmDistDir());
  return initWasmWithThreads(wasm, wasmDistDir(), threads);
}

/** The initialisation under way, shared by every caller until it settles. */
let initializing: Promise<BackendReport> | null = null;

/**
 * Initialise tfjs once per process. Safe to call again: returns the first report.
 * Set FINETUNE_BACKEND to one of tensorflow-gpu, tensorflow, wasm, cpu to force it.
 */
export function initBackend(options: BackendOptions = {}): Promise<BackendReport> {
  if (current) return Promise.resolve(current);
  // One initialisation at a time: callers that come while it runs (the engine worker's warm-up
  // and the job that arrives meanwhile) share it. Two at once patched the same globals twice
  // and raced tfjs' backend registry: the threaded init stalled into its 30 s fallback, or hung.
  initializing ??= initOnce(options).finally(() => {
    initializing = null;
  });
  return initializing;
}

async function initOnce(options: BackendOptions): Promise<BackendReport> {
  const prefer = options.prefer ?? (process.env.FINETUNE_BACKEND as BackendName | undefined);
  if (prefer && !BACKEND_ORDER.includes(prefer)) {
    throw new Error(`Unknown backend "${prefer}". Expected one of: ${BACKEND_ORDER.join(', ')}.`);
  }
  const skipped: BackendReport['skipped'] = [];
  for (const name of BACKEND_ORDER) {
    if (prefer && name !== prefer) {
      if (BACKEND_ORDER.indexOf(name) < BACKEND_ORDER.indexOf(prefer)) skipped.push({ name, reason: `not requested (FINETUNE_BACKEND=${prefer})` });
      continue;
    }
    try {
      if (name === 'tensorflow-gpu') {
        await tryNode('@tensorflow/tfjs-node-gpu');
        current = { name, package: '@tensorflow/tfjs-node-gpu', threads: 0, skipped };
      } else if (name === 'tensorflow') {
        await tryNode('@tensorflow/tfjs-node');
        current = { name, package: '@tensorflow/tfjs-node', threads: 0, skipped };
      } else if (name === 'wasm') {
        const wanted = wantedThreads(options.threads);
        const { threads, fallbackReason } = await tryWasm(wanted);
        // A thread count below the wanted one is a faster option not taken: report why.
        if (fallbackReason) skipped.push({ name: `wasm with ${wanted} threads`, reason: fallbackReason });
        current = { name, package: '@tensorflow/tfjs-backend-wasm', threads, skipped };
        setGemmThreads(threads);
      } else {
        await import('@tensorflow/tfjs-backend-cpu');
        if (!(await tf.setBackend('cpu'))) throw new Error('the cpu backend did not initialise');
        current = { name, package: '@tensorflow/tfjs-backend-cpu', threads: 1, skipped };
      }
      // wasm lacks the conv gradients and cpu's are naive: ours serve both (no-op for tfjs-node).
      registerTrainingKernels();
      return current;
    } catch (err) {
      skipped.push({ name, reason: firstLine(err) });
    }
  }
  throw new Error(`No tfjs backend could be initialised: ${skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')}`);
}

/** The report of the backend in use, or null before `initBackend`. */
export function backendReport(): BackendReport | null {
  return current;
}
