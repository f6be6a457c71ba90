/**
 * Registers our training kernels: the convolution gradients tfjs-backend-wasm 4.22 lacks
 * (so conv layers can train there at all), and replacements for the cpu backend's naive
 * ones. Idempotent; call once after the backend initialised (initBackend does).
 */
import * as tf from '@tensorflow/tfjs';
import { registerActGradKernel } from './act-grad';
import { registerAdamKernel } from './adam';
import { registerFoldKernels } from './fold';
import { registerConvBnActKernel } from './fused-unit';
import { registerGlobalPoolKernels } from './global-pool';
import { registerSharingIdentity } from './identity';
import { registerInvertedResidualKernel } from './inverted-residual';
import { conv2DBackpropFilter, conv2DBackpropInput, depthwiseBackpropFilter, depthwiseBackpropInput } from './conv-grads';

type KernelFunc = tf.KernelConfig['kernelFunc'];

const KERNELS: [string, KernelFunc][] = [
  ['Conv2DBackpropFilter', conv2DBackpropFilter as unknown as KernelFunc],
  ['Conv2DBackpropInput', conv2DBackpropInput as unknown as KernelFunc],
  ['DepthwiseConv2dNativeBackpropFilter', depthwiseBackpropFilter as unknown as KernelFunc],
  ['DepthwiseConv2dNativeBackpropInput', depthwiseBackpropInput as unknown as KernelFunc],
];

const BACKENDS = ['wasm', 'cpu'];
const builtins = new Map<string, tf.KernelConfig>();
let registered = false;

/** Register (or re-register) our gradient kernels for wasm and cpu. Returns the kernel names. */
export function registerTrainingKernels(): string[] {
  if (registered) return KERNELS.map(([n]) => n);
  for (const backendName of BACKENDS) {
    for (const [kernelName, kernelFunc] of KERNELS) {
      const existing = tf.getKernel(kernelName, backendName);
      if (existing) {
        builtins.set(`${kernelName}/${backendName}`, existing);
        tf.unregisterKernel(kernelName, backendName);
      }
      tf.registerKernel({ kernelName, backendName, kernelFunc });
    }
  }
  registerActGradKernel();
  registerFoldKernels();
  registerConvBnActKernel();
  registerGlobalPoolKernels();
  registerSharingIdentity();
  registerAdamKernel();
  registerInvertedResidualKernel();
  registered = true;
  return KERNELS.map(([n]) => n);
}

/** The backend's own kernel we replaced (the reference our tests compare against), if any. */
export function builtinKernel(kernelName: string, backendName: string): tf.KernelConfig | undefined {
  return builtins.get(`${kernelName}/${backendName}`) ?? (registered ? undefined : tf.getKernel(kernelName, backendName));
}
