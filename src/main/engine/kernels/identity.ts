/**
 * `Identity` on wasm without the copy. tfjs clones every tensor an op saves for its
 * gradient (engine.saveTensorsForBackwardMode: keep(clone(t))), and tfjs-backend-wasm's
 * Identity copies the data, so each training step copied every saved activation once
 * more (~100 copies a step for the last three blocks alone). Kernels never write into
 * their inputs, so a clone can share the data under a reference count, exactly as the cpu
 * backend's Identity and the wasm backend's own Reshape already do.
 */
import * as tf from '@tensorflow/tfjs';
import type { TensorInfo } from './backend-io';

interface RefCounted {
  incRef(dataId: object): void;
}

function sharingIdentity(args: { inputs: { x: TensorInfo }; backend: tf.KernelBackend }): TensorInfo {
  const { x } = args.inputs;
  (args.backend as unknown as RefCounted).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

let builtin: tf.KernelConfig | undefined;

/** Replace wasm's copying Identity (idempotent; strings keep the built-in kernel). */
export function registerSharingIdentity(): void {
  const current = tf.getKernel('Identity', 'wasm');
  if (!current || current.kernelFunc === (wrapped as unknown)) return;
  builtin = current;
  tf.unregisterKernel('Identity', 'wasm');
  tf.registerKernel({ kernelName: 'Identity', backendName: 'wasm', kernelFunc: wrapped as unknown as tf.KernelConfig['kernelFunc'] });
}

function wrapped(args: { inputs: { x: TensorInfo }; backend: tf.KernelBackend; attrs: object }): TensorInfo {
  if (args.inputs.x.dtype === 'string' || !('incRef' in args.backend)) return builtin!.kernelFunc(args as never) as TensorInfo;
  return sharingIdentity(args);
}
