/**
 * The few backend internals our JS kernels need, for wasm and cpu alike: typed-array views
 * of inputs, outputs we can write into, and calls to the backend's own fast kernels
 * (XNNPACK matmul on wasm). On wasm every allocation may grow (and so detach) the heap,
 * so views must be taken after the last allocation: `view()` always returns a fresh one.
 */
import * as tf from '@tensorflow/tfjs';
import { heapOffset, simdFor } from './simd';

export type TensorInfo = { dataId: object; shape: number[]; dtype: tf.DataType };

interface WasmLike {
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: Float32Array): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
  disposeData(dataId: object, force?: boolean): boolean;
}

interface CpuLike {
  data: { get(dataId: object): { values: Float32Array } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values?: Float32Array): TensorInfo;
  disposeIntermediateTensorInfo(t: TensorInfo): void;
}

export class BackendIO {
  readonly kind: 'wasm' | 'cpu';
  constructor(readonly backend: tf.KernelBackend, readonly backendName: string) {
    this.kind = backendName === 'wasm' ? 'wasm' : 'cpu';
  }

  /** A fresh Float32Array view (wasm) or the backing array (cpu) of a tensor's data. */
  view(t: TensorInfo): Float32Array {
    if (this.kind === 'wasm') return (this.backend as unknown as WasmLike).typedArrayFromHeap(t);
    return (this.backend as unknown as CpuLike).data.get(t.dataId).values;
  }

  /** A new float32 tensor; zero-filled if asked (wasm memory is not zeroed). */
  alloc(shape: number[], zero = false): TensorInfo {
    if (this.kind === 'wasm') {
      const out = (this.backend as unknown as WasmLike).makeOutput(shape, 'float32');
      if (zero) this.view(out).fill(0);
      return out;
    }
    return (this.backend as unknown as CpuLike).makeTensorInfo(shape, 'float32', new Float32Array(shape.reduce((a, b) => a * b, 1)));
  }

  /** A float32 tensor holding a copy of `values`. */
  fromArray(shape: number[], values: Float32Array): TensorInfo {
    if (this.kind === 'wasm') return (this.backend as unknown as WasmLike).makeOutput(shape, 'float32', undefined, values);
    return (this.backend as unknown as CpuLike).makeTensorInfo(shape, 'float32', values);
  }

  dispose(t: TensorInfo): void {
    if (this.kind === 'wasm') (this.backend as unknown as WasmLike).disposeData(t.dataId);
    else (this.backend as unknown as CpuLike).disposeIntermediateTensorInfo(t);
  }

  /** The same data under another shape, without copying (valid while `t` lives). */
  reshaped(t: TensorInfo, shape: number[]): TensorInfo {
    return { dataId: t.dataId, shape, dtype: t.dtype };
  }

  /** Run a kernel registered for this backend (e.g. BatchMatMul, Transpose) on TensorInfos. */
  run(kernelName: string, inputs: Record<string, TensorInfo>, attrs: Record<string, unknown> = {}): TensorInfo {
    const k = tf.getKernel(kernelName, this.backendName);
    if (!k) throw new Error(`internal: kernel ${kernelName} is not registered for ${this.backendName}`);
    return k.kernelFunc({ inputs: inputs as never, backend: this.backend, attrs: attrs as never }) as TensorInfo;
  }

  /** [m, k] x [k, n] -> [m, n] with the backend's plain (non-transposed) matmul, its fast path. */
  matmul(a: TensorInfo, b: TensorInfo, m: number, k: number, n: number): TensorInfo {
    const out = this.run('BatchMatMul', { a: this.reshaped(a, [1, m, k]), b: this.reshaped(b, [1, k, n]) }, { transposeA: false, transposeB: false });
    return this.reshaped(out, [m, n]);
  }

  /** [r, c] -> [c, r] as a new tensor (on wasm with SIMD, 4x4 blocks in registers: 5-10x tfjs' Transpose). */
  transpose2d(a: TensorInfo, r: number, c: number): TensorInfo {
    const simd = this.kind === 'wasm' && r % 4 === 0 && c % 4 === 0 ? simdFor(this.backend) : null;
    if (simd) {
      const out = this.alloc([c, r]);
      simd.transpose(heapOffset(this.backend, a), heapOffset(this.backend, out), r, c);
      return out;
    }
    const out = this.run('Transpose', { x: this.reshaped(a, [r, c]) }, { perm: [1, 0] });
    return this.reshaped(out, [c, r]);
  }
}
