/**
 * Starts tfjs-backend-wasm's threaded SIMD build under Node (or Electron's main process),
 * which tfjs disables there: its flag WASM_HAS_MULTITHREAD_SUPPORT is false when IS_NODE
 * because Emscripten creates its pthread workers from blob: URLs that worker_threads
 * refuse, and its C++ side sizes XNNPACK's pool as half the logical cores.
 *
 * While the backend initialises (and only then) we: set the flag; capture the two blobs
 * (the worker script, and the main script the worker evaluates) and write them to files,
 * giving the worker the bundle globals the main script expects; present twice the wanted
 * cores; and start the workers without our own loader flags. Everything is restored
 * afterwards. Any failure falls back to the single-threaded build with the reason.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';

const nodeRequire = createRequire(import.meta.url);
const FLAG = 'WASM_HAS_MULTITHREAD_SUPPORT';
const INIT_TIMEOUT_MS = 30_000;

export interface WasmInitResult {
  threads: number;
  /** Why fewer threads than wanted run (absent when the wanted count runs). */
  fallbackReason?: string;
}

type WasmPackage = typeof import('@tensorflow/tfjs-backend-wasm');

/** Globals the bundle's threaded factory refers to; a pthread worker has to define them. */
const WORKER_PRELUDE = (mainFile: string) => `Object.assign(globalThis, {
  require$$0: require('fs'), require$$1: require('path'), require$$3: require('perf_hooks'), require$$4: require('os'),
  commonjsGlobal: globalThis, _scriptDir: ${JSON.stringify(mainFile)},
  __values: (o) => { const it = typeof Symbol === 'function' && o[Symbol.iterator]; if (it) return it.call(o); let i = 0; return { next: () => ({ value: o && o[i++], done: !o || i > o.length }) }; },
  __read: (o, n) => { const a = Array.from(o); return n === undefined ? a : a.slice(0, n); },
  __spreadArray: (to, from) => to.concat(Array.prototype.slice.call(from)),
});
`;

/** The worker loads the main script from a Blob unless it gets a path: make it a path. */
const BLOB_BRANCH = /if\(typeof e\.data\.urlOrBlob=="string"\)\{importScripts\(e\.data\.urlOrBlob\)\}else\{[^}]*\}/;

/**
 * XNNPACK's pool threads spin for ~1,000,000 iterations (~3 ms here) after every parallel
 * op before they sleep (pthreadpool's wait_for_new_command). Between the ops of a training
 * step that spinning holds a core our own kernels (the GEMM's second thread) need. In the
 * threaded binary we shorten it to SPIN_ITERATIONS (~0.15 ms): still long enough to catch
 * the next op of an inference pass. The site is matched with its surroundings (the atomic
 * load of the command, the compare, then the constant and the YIELD_WORKERS flag test); if
 * the binary differs, it is left as it is.
 */
const SPIN_SITE = [0xfe, 0x10, 0x02, 0x00, 0x22, 0x02, 0x20, 0x01, 0x47, 0x0d, 0x00, 0x41, 0xc0, 0x84, 0x3d, 0x21, 0x07, 0x20, 0x06, 0x41, 0x02, 0x71, 0x45];
const SPIN_CONST_AT = 12;
export const SPIN_ITERATIONS = 50_000;

/** The threaded binary with the pool's idle spin shortened, or null if the site is not found exactly once. */
export function shortenPoolSpin(binary: Uint8Array, iterations = SPIN_ITERATIONS): Uint8Array<ArrayBuffer> | null {
  const hits: number[] = [];
  for (let i = binary.indexOf(SPIN_SITE[0]); i !== -1 && i + SPIN_SITE.length <= binary.length; i = binary.indexOf(SPIN_SITE[0], i + 1)) {
    if (SPIN_SITE.every((b, j) => binary[i + j] === b)) hits.push(i);
  }
  if (hits.length !== 1 || iterations < 1 || iterations >= 1 << 21) return null;
  const out = Uint8Array.from(binary);
  // Same length: a three-byte LEB128 (padding is valid), so no offset in the module moves.
  out.set([(iterations & 0x7f) | 0x80, ((iterations >> 7) & 0x7f) | 0x80, iterations >> 14], hits[0] + SPIN_CONST_AT);
  return out;
}

interface Patches {
  restore(): void;
  workers: { terminate(): unknown }[];
  error(): string | undefined;
}

function patchForInit(dir: string, wanted: number): Patches {
  const mainFile = path.join(dir, 'main.js');
  const workerFile = path.join(dir, 'worker.cjs');
  let problem: string | undefined;
  const g = globalThis as unknown as Record<string, unknown>;
  const OrigBlob = globalThis.Blob;
  const origCreate = URL.createObjectURL;
  const origCpus = os.cpus;
  const origGlobalWorker = g.Worker;
  const workerThreads = nodeRequire('node:worker_threads') as { Worker: new (f: string, o?: object) => { terminate(): unknown } };
  const OrigWorker = workerThreads.Worker;
  const texts = new WeakMap<object, string>();
  const workers: { terminate(): unknown }[] = [];
  const origReadFileSync = fs.readFileSync;

  g.Blob = class extends OrigBlob {
    constructor(parts: BlobPart[], options?: BlobPropertyBag) {
      super(parts, options);
      const text = parts.every((p) => typeof p === 'string') ? (parts as string[]).join('') : '';
      texts.set(this, text);
      if (text.startsWith('var WasmBackendModuleThreadedSimd')) fs.writeFileSync(mainFile, text);
    }
  };
  URL.createObjectURL = (obj: Blob) => {
    const text = texts.get(obj);
    if (!text || !text.includes('worker_threads')) return origCreate(obj);
    const patched = text.replace(BLOB_BRANCH, `importScripts(${JSON.stringify(mainFile)});`);
    if (patched === text) {
      problem = 'the wasm worker script has an unexpected shape (tfjs-backend-wasm version changed?)';
      throw new Error(problem);
    }
    fs.writeFileSync(workerFile, WORKER_PRELUDE(mainFile) + patched);
    return workerFile;
  };
  // XNNPACK's pool is half the logical cores: present twice the threads we want.
  (os as { cpus: () => os.CpuInfo[] }).cpus = () => {
    const real = origCpus();
    return Array.from({ length: 2 * wanted }, (_, i) => real[i % real.length]);
  };
  // pthread workers need no loader (tsx, electron-vite) flags of the parent.
  workerThreads.Worker = class extends OrigWorker {
    constructor(file: string, options?: object) {
      super(file, { ...options, execArgv: [] });
      workers.push(this);
    }
  };
  // Emscripten reads the threaded binary with fs.readFileSync under Node.
  (fs as { readFileSync: unknown }).readFileSync = function (this: unknown, file: fs.PathOrFileDescriptor, ...rest: unknown[]) {
    const data = (origReadFileSync as (...a: unknown[]) => unknown).call(this, file, ...rest);
    if (typeof file === 'string' && file.endsWith('tfjs-backend-wasm-threaded-simd.wasm') && data instanceof Uint8Array) {
      return shortenPoolSpin(data) ?? data;
    }
    return data;
  };
  tf.env().set(FLAG, true);
  return {
    workers,
    error: () => problem,
    restore: () => {
      g.Blob = OrigBlob;
      URL.createObjectURL = origCreate;
      (os as { cpus: () => os.CpuInfo[] }).cpus = origCpus;
      workerThreads.Worker = OrigWorker;
      (fs as { readFileSync: unknown }).readFileSync = origReadFileSync;
      if (origGlobalWorker === undefined) delete g.Worker;
      else g.Worker = origGlobalWorker;
      tf.env().set(FLAG, false);
    },
  };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

async function initSingle(wasm: WasmPackage): Promise<number> {
  tf.env().set(FLAG, false);
  if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend did not initialise');
  await tf.ready();
  return wasm.getThreadsCount();
}

/** Why threads cannot work here, or null. */
function threadBlocker(distDir: string): string | null {
  if (typeof SharedArrayBuffer !== 'function') return 'SharedArrayBuffer is not available';
  if (!fs.existsSync(path.join(distDir, 'tfjs-backend-wasm-threaded-simd.wasm'))) return 'the threaded SIMD wasm binary is missing';
  try {
    new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  } catch {
    return 'shared WebAssembly memory is not supported';
  }
  return null;
}

/**
 * Initialise the wasm backend with `wanted` XNNPACK threads (1 = the plain SIMD build).
 * Never throws for threading problems: it falls back to one thread and says why.
 */
export async function initWasmWithThreads(wasm: WasmPackage, distDir: string, wanted: number): Promise<WasmInitResult> {
  if (wanted <= 1) return { threads: await initSingle(wasm), fallbackReason: wanted === 1 ? undefined : 'one thread requested' };
  const blocker = threadBlocker(distDir);
  if (blocker) return { threads: await initSingle(wasm), fallbackReason: `threaded wasm unavailable: ${blocker}` };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetune-wasm-threads-'));
  const patches = patchForInit(dir, wanted);
  let reason: string | undefined;
  try {
    const ok = await withTimeout(tf.setBackend('wasm'), INIT_TIMEOUT_MS, 'threaded wasm initialisation');
    if (!ok) throw new Error(patches.error() ?? 'the threaded wasm backend did not initialise');
    await tf.ready();
    const threads = wasm.getThreadsCount();
    // The pool took its threads at init; the pre-spawned spare workers only cost memory.
    type PWorker = { terminate(): unknown; unref(): void };
    const pthread = (tf.backend() as unknown as { wasm?: { PThread?: { unusedWorkers: PWorker[]; runningWorkers: PWorker[] } } }).wasm?.PThread;
    if (pthread) {
      for (const w of pthread.unusedWorkers) void w.terminate();
      pthread.unusedWorkers = [];
      // Emscripten's message listener re-refs the pool threads' ports: they must not keep the process alive.
      for (const w of pthread.runningWorkers) w.unref();
    }
    return { threads, fallbackReason: threads < wanted ? `XNNPACK started ${threads} of ${wanted} threads` : undefined };
  } catch (err) {
    reason = `threaded wasm failed (${(err as Error).message}); using 1 thread`;
    for (const w of patches.workers) void w.terminate();
  } finally {
    patches.restore();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return { threads: await initSingle(wasm), fallbackReason: reason };
}
