/**
 * Optimisers with parameter groups. tfjs optimisers have one learning rate each, so the
 * update rules are written here (PyTorch semantics, so recipes transfer): SGD with momentum
 * / Nesterov, Adam (L2 decay added to the gradient) and AdamW (decoupled decay), each group
 * with its own lr and weight decay, biases and BatchNorm optionally excluded from decay.
 *
 * State is keyed by `group/index`, not by tf.Variable identity, because the backbone may
 * re-create a group's variables when groups are frozen or unfrozen; keys survive that and a
 * checkpoint round trip.
 */
import * as tf from '@tensorflow/tfjs';
import type { z } from 'zod';
import type { optimizerSchema } from './config';
import { adamStep } from './kernels/adam';

export type OptimizerConfig = z.output<typeof optimizerSchema>;

export interface OptimizerGroup {
  name: string;
  variables: tf.Variable[];
  weightDecay: number;
  /** Variables exempt from weight decay (biases, BatchNorm gamma/beta) when the config asks. */
  noDecay?: (v: tf.Variable) => boolean;
}

/** A tensor as plain data, for checkpoints. */
export interface TensorData {
  shape: number[];
  values: Float32Array;
}

export interface SlotState {
  step: number;
  m?: TensorData;
  v?: TensorData;
  buf?: TensorData;
}

export interface OptimizerState {
  name: string;
  slots: Record<string, SlotState>;
}

interface Slot {
  step: number;
  m?: tf.Tensor;
  v?: tf.Tensor;
  buf?: tf.Tensor;
}

function toData(t: tf.Tensor | undefined): TensorData | undefined {
  return t ? { shape: t.shape.slice(), values: t.dataSync() as Float32Array } : undefined;
}

function fromData(d: TensorData | undefined): tf.Tensor | undefined {
  return d ? tf.keep(tf.tensor(d.values, d.shape, 'float32')) : undefined;
}

/** One optimiser over several parameter groups; lrs are passed per step (schedules live outside). */
export class GroupedOptimizer {
  private groups: OptimizerGroup[] = [];
  private slots = new Map<string, Slot>();

  constructor(readonly config: OptimizerConfig) {}

  /** Replace the group list (e.g. after an unfreeze). Existing state is kept by key. */
  setGroups(groups: OptimizerGroup[]): void {
    this.groups = groups;
  }

  get groupNames(): string[] {
    return this.groups.map((g) => g.name);
  }

  /** Every trainable variable of every group, in group order (the varList for tf.variableGrads). */
  variables(): tf.Variable[] {
    return this.groups.flatMap((g) => g.variables);
  }

  /**
   * Apply one update. `grads` is keyed by variable name (what tf.variableGrads returns);
   * `lrs[i]` is the current lr of group i. Variables without a gradient are left untouched.
   */
  applyGradients(grads: Record<string, tf.Tensor>, lrs: number[]): void {
    const c = this.config;
    tf.tidy(() => {
      this.groups.forEach((g, gi) => {
        const lr = lrs[gi];
        g.variables.forEach((p, j) => {
          const grad = grads[p.name];
          if (!grad) return;
          const key = `${g.name}/${j}`;
          const slot = this.slots.get(key) ?? { step: 0 };
          this.slots.set(key, slot);
          slot.step += 1;
          const wd = c.excludeBiasAndNorm && g.noDecay?.(p) ? 0 : g.weightDecay;
          const next = c.name === 'sgd' ? this.sgd(p, grad, slot, lr, wd) : this.adam(p, grad, slot, lr, wd);
          p.assign(next);
        });
      });
    });
  }

  private sgd(p: tf.Variable, grad: tf.Tensor, slot: Slot, lr: number, wd: number): tf.Tensor {
    const c = this.config;
    let g = wd > 0 ? grad.add(p.mul(wd)) : grad;
    if (c.momentum > 0) {
      const buf = slot.buf ? slot.buf.mul(c.momentum).add(g) : g.clone();
      replace(slot, 'buf', buf);
      g = c.nesterov ? g.add(buf.mul(c.momentum)) : buf;
    }
    return p.sub(g.mul(lr));
  }

  private adam(p: tf.Variable, grad: tf.Tensor, slot: Slot, lr: number, wd: number): tf.Tensor {
    const c = this.config;
    const decoupled = c.name === 'adamw';
    const bc1 = 1 - c.beta1 ** slot.step;
    const bc2 = 1 - c.beta2 ** slot.step;
    // One kernel per variable where our kernels are registered (wasm, cpu).
    const fused = adamStep(p, grad, slot.m, slot.v, { lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps, l2: !decoupled ? wd : 0, decoupled: decoupled ? lr * wd : 0, bc1, bc2 });
    if (fused) {
      replace(slot, 'm', fused[1]);
      replace(slot, 'v', fused[2]);
      return fused[0];
    }
    const g = !decoupled && wd > 0 ? grad.add(p.mul(wd)) : grad;
    const m = slot.m ? slot.m.mul(c.beta1).add(g.mul(1 - c.beta1)) : g.mul(1 - c.beta1);
    const v = slot.v ? slot.v.mul(c.beta2).add(g.square().mul(1 - c.beta2)) : g.square().mul(1 - c.beta2);
    replace(slot, 'm', m);
    replace(slot, 'v', v);
    const update = m.div(bc1).div(v.div(bc2).sqrt().add(c.eps)).mul(lr);
    const base = decoupled && wd > 0 ? p.mul(1 - lr * wd) : p;
    return base.sub(update);
  }

  /** Forget all moments (a fresh optimiser, e.g. when a stage resets it). */
  reset(): void {
    for (const s of this.slots.values()) [s.m, s.v, s.buf].forEach((t) => t?.dispose());
    this.slots.clear();
  }

  /** Moments and step counts as plain data, for a checkpoint. */
  getState(): OptimizerState {
    const slots: Record<string, SlotState> = {};
    for (const [k, s] of this.slots) slots[k] = { step: s.step, m: toData(s.m), v: toData(s.v), buf: toData(s.buf) };
    return { name: this.config.name, slots };
  }

  /** Restore what getState returned (the optimiser name must match). */
  setState(state: OptimizerState): void {
    this.reset();
    if (state.name !== this.config.name) return;
    for (const [k, s] of Object.entries(state.slots)) {
      this.slots.set(k, { step: s.step, m: fromData(s.m), v: fromData(s.v), buf: fromData(s.buf) });
    }
  }

  /** Number of tensors the optimiser holds (for memory accounting in tests). */
  get slotTensors(): number {
    let n = 0;
    for (const s of this.slots.values()) n += [s.m, s.v, s.buf].filter(Boolean).length;
    return n;
  }

  dispose(): void {
    this.reset();
    this.groups = [];
  }
}

/** Swap a slot tensor: keep the new one past the surrounding tidy, free the old one. */
function replace(slot: Slot, key: 'm' | 'v' | 'buf', t: tf.Tensor): void {
  const old = slot[key];
  slot[key] = tf.keep(t);
  if (old && old !== t) old.dispose();
}
