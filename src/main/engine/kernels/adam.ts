/**
 * One Adam / AdamW update of one parameter as a single kernel: new parameter, first and
 * second moments in one pass. Written with tf ops the update is a dozen kernels per
 * variable; a full fine-tuning step of MobileNetV2 has ~260 variables, so the optimiser
 * alone ran ~3,000 tiny kernels a step. Same arithmetic as the op version (PyTorch's
 * Adam/AdamW). On wasm the whole update is one SIMD loop in float32 (as PyTorch computes
 * it); the JS loop (cpu, and the last n % 4 floats) computes in float64, rounded on store.
 */
import * as tf from '@tensorflow/tfjs';
import { BackendIO, type TensorInfo } from './backend-io';
import { LIST_CALL, helperThread } from './gemm-simd';
import { heapOffset, simdFor } from './simd';

export const ADAM_KERNEL = 'FinetuneAdamStep';
/** Below this many floats a second thread costs more than it saves. */
const SPLIT_MIN = 1 << 15;

export interface AdamAttrs {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** L2 decay added to the gradient (Adam). */
  l2: number;
  /** Decoupled decay factor applied to the parameter (AdamW: lr * wd). */
  decoupled: number;
  /** 1 - beta^step. */
  bc1: number;
  bc2: number;
  /** False on the first step: m and v are taken as zero (the inputs are placeholders). */
  hasMoments: boolean;
}

function kernelFunc(args: { inputs: { p: TensorInfo; g: TensorInfo; m: TensorInfo; v: TensorInfo }; backend: tf.KernelBackend; attrs: AdamAttrs }): TensorInfo[] {
  const { p, g, m, v } = args.inputs;
  const a = args.attrs;
  const b = new BackendIO(args.backend, 'typedArrayFromHeap' in args.backend ? 'wasm' : 'cpu');
  const pOut = b.alloc([...p.shape]);
  const mOut = b.alloc([...p.shape]);
  const vOut = b.alloc([...p.shape]);
  const keep = 1 - a.decoupled;
  const c1 = 1 - a.beta1;
  const c2 = 1 - a.beta2;
  const n = p.shape.reduce((x, y) => x * y, 1);
  const simd = b.kind === 'wasm' ? simdFor(args.backend) : null;
  let done = 0;
  if (simd && n >= 4) {
    const at = (t: TensorInfo) => heapOffset(args.backend, t);
    // Without moments yet, m and v read g times a zero beta.
    const [mIn, vIn, b1, b2] = a.hasMoments ? [m, v, a.beta1, a.beta2] : [g, g, 0, 0];
    const ptrs = [p, g, mIn, vIn, pOut, mOut, vOut].map(at);
    const range = (v0: number, n4: number) => [...ptrs.map((q) => q + 16 * v0), n4, b1, c1, b2, c2, a.l2, keep, 1 / a.bc1, 1 / a.bc2, a.eps, a.lr] as Parameters<typeof simd.adam>;
    // Element-wise: with two threads the GEMM helper updates the second half of the vectors.
    const helper = n >= SPLIT_MIN ? helperThread(args.backend) : null;
    const n4 = n >> 2;
    const mine = helper ? n4 >> 1 : n4;
    const here = () => simd.adam(...range(0, mine));
    if (helper) {
      const theirs = range(mine, n4 - mine);
      helper.alongside([LIST_CALL, helper.functionIds(simd.module, ['adam'])[0], theirs.length, ...theirs], here);
    } else here();
    done = n & ~3;
  }
  const [pv, gv, po, mo, vo] = [b.view(p), b.view(g), b.view(pOut), b.view(mOut), b.view(vOut)];
  const mv = a.hasMoments ? b.view(m) : null;
  const vv = a.hasMoments ? b.view(v) : null;
  for (let i = done; i < n; i++) {
    const gi = a.l2 ? gv[i] + pv[i] * a.l2 : gv[i];
    const mi = (mv ? mv[i] * a.beta1 : 0) + gi * c1;
    const vi = (vv ? vv[i] * a.beta2 : 0) + gi * gi * c2;
    mo[i] = mi;
    vo[i] = vi;
    po[i] = pv[i] * keep - ((mi / a.bc1) / (Math.sqrt(vi / a.bc2) + a.eps)) * a.lr;
  }
  return [pOut, mOut, vOut];
}

/** Register for wasm and cpu (idempotent). */
export function registerAdamKernel(): void {
  for (const backendName of ['wasm', 'cpu']) {
    if (!tf.getKernel(ADAM_KERNEL, backendName)) tf.registerKernel({ kernelName: ADAM_KERNEL, backendName, kernelFunc: kernelFunc as unknown as tf.KernelConfig['kernelFunc'] });
  }
}

/** [p', m', v'] for one step, or null when the backend has no such kernel (native tfjs-node). */
export function adamStep(p: tf.Tensor, g: tf.Tensor, m: tf.Tensor | undefined, v: tf.Tensor | undefined, attrs: Omit<AdamAttrs, 'hasMoments'>): [tf.Tensor, tf.Tensor, tf.Tensor] | null {
  if (!tf.getKernel(ADAM_KERNEL, tf.getBackend())) return null;
  const inputs = { p, g, m: m ?? g, v: v ?? g };
  return tf.engine().runKernel(ADAM_KERNEL, inputs as never, { ...attrs, hasMoments: !!(m && v) } as never) as unknown as [tf.Tensor, tf.Tensor, tf.Tensor];
}
