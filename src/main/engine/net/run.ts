/**
 * Runs compiled nodes. One code path serves both modes: frozen nodes use BatchNorm folded
 * into the conv (cached per node), trainable nodes fold on the fly from their variables
 * inside the tape, so their gradient flows through the fold into kernel, gamma and beta
 * with kernel-sized work instead of activation-sized BatchNorm backward ops.
 */
import * as tf from '@tensorflow/tfjs';
import type { BnPart, ConvPart, NetNode, NodeOp } from './compile';
import type { Act } from './topology';
import { convBnAct, frozenConvForward } from '../kernels/fused-unit';
import { foldConvBnOp, hasFoldKernels } from '../kernels/fold';
import { invertedResidual, invertedResidualSupported, invertedResidualsEnabled, type Clamp, type InvertedResidualAttrs } from '../kernels/inverted-residual';

export interface FoldedConv {
  filter: tf.Tensor4D;
  bias?: tf.Tensor1D;
}

export interface FoldedBn {
  scale: tf.Tensor1D;
  shift: tf.Tensor1D;
}

export type Folded = FoldedConv | FoldedBn;

/** How a run looks weights up and which BatchNorm mode trainable nodes use. */
export interface RunContext {
  weight(name: string): tf.Tensor;
  /** Cached folded parameters of a frozen node, or undefined to fold now from `weight`. */
  folded(node: NetNode): Folded | undefined;
  /** True for nodes of trainable groups (differentiable path). */
  trainable(node: NetNode): boolean;
  /** Normalise trainable BatchNorms with batch statistics and update their moving averages. */
  batchStats: boolean;
  /** Use the hand-written fused conv+BN+ReLU6 gradient (false: tfjs autodiff, for tests). */
  fusedUnits: boolean;
  /** The run is outside any gradient tape: frozen inverted-residual blocks may run as one kernel. */
  noTape?: boolean;
}

const FUSED = new Set(['linear', 'relu', 'relu6']);

/** Apply a Keras activation with tf ops (differentiable). */
export function applyAct(x: tf.Tensor, act: Act): tf.Tensor {
  switch (act.name) {
    case 'linear': return x;
    case 'relu': return act.maxValue != null ? tf.clipByValue(x, 0, act.maxValue) : tf.relu(x);
    case 'relu6': return tf.relu6(x);
    case 'leaky_relu': return tf.leakyRelu(x, act.alpha ?? 0.3);
    case 'sigmoid': return tf.sigmoid(x);
    case 'tanh': return tf.tanh(x);
    case 'softmax': return tf.softmax(x);
    case 'elu': return tf.elu(x);
    case 'selu': return tf.selu(x);
    case 'softplus': return tf.softplus(x);
    case 'softsign': return tf.div(x, tf.add(tf.abs(x), 1));
    case 'swish': return tf.mul(x, tf.sigmoid(x));
    case 'hard_sigmoid': return tf.clipByValue(tf.add(tf.mul(x, 0.2), 0.5), 0, 1);
    default: throw new Error(`internal: activation ${act.name}`);
  }
}

/** BatchNorm (inference) as a per-channel affine map: scale = gamma / sqrt(var + eps). */
export function bnAffine(bn: BnPart, w: (n: string) => tf.Tensor): FoldedBn {
  const inv = tf.rsqrt(tf.add(w(bn.variance), bn.epsilon));
  const scale = (bn.gamma ? tf.mul(w(bn.gamma), inv) : inv) as tf.Tensor1D;
  const meanScaled = tf.mul(w(bn.mean), scale);
  const shift = (bn.beta ? tf.sub(w(bn.beta), meanScaled) : tf.neg(meanScaled)) as tf.Tensor1D;
  return { scale, shift };
}

/** Fold an inference-mode BatchNorm into the conv's kernel and bias (differentiable). */
export function foldConvBn(conv: ConvPart, bn: BnPart | undefined, w: (n: string) => tf.Tensor): FoldedConv {
  const kernel = w(conv.kernel) as tf.Tensor4D;
  const bias = conv.bias ? (w(conv.bias) as tf.Tensor1D) : undefined;
  if (!bn) return { filter: kernel, bias };
  if (hasFoldKernels()) {
    const opt = (n: string | undefined) => (n ? (w(n) as tf.Tensor1D) : undefined);
    return foldConvBnOp({ kernel, bias, gamma: opt(bn.gamma), beta: opt(bn.beta), mean: w(bn.mean) as tf.Tensor1D, variance: w(bn.variance) as tf.Tensor1D, epsilon: bn.epsilon });
  }
  const { scale, shift } = bnAffine(bn, w);
  // Depthwise kernels are [kh, kw, cin, 1]: output channel c scales row c.
  const s = conv.depthwise ? tf.reshape(scale, [kernel.shape[2], 1]) : scale;
  const filter = tf.mul(kernel, s) as tf.Tensor4D;
  return { filter, bias: bias ? (tf.add(shift, tf.mul(bias, scale)) as tf.Tensor1D) : shift };
}

function conv(x: tf.Tensor4D, c: ConvPart, filter: tf.Tensor4D, bias: tf.Tensor1D | undefined, activation: 'linear' | 'relu' | 'relu6'): tf.Tensor4D {
  const args = { x, filter, strides: c.strides, pad: c.pad as 'same', dilations: c.dilations, bias, activation };
  return c.depthwise ? tf.fused.depthwiseConv2d(args) : tf.fused.conv2d(args);
}

function runConv(node: NetNode, op: Extract<NodeOp, { kind: 'conv' }>, x: tf.Tensor4D, ctx: RunContext): tf.Tensor {
  const trainable = ctx.trainable(node);
  if (trainable && op.bn && ctx.batchStats) {
    // Training BatchNorm statistics: the conv output must be normalised by its batch moments.
    const kernel = ctx.weight(op.conv.kernel) as tf.Tensor4D;
    const z = conv(x, op.conv, kernel, op.conv.bias ? (ctx.weight(op.conv.bias) as tf.Tensor1D) : undefined, 'linear');
    return applyAct(batchNormTrain(z, op.bn, ctx), op.act);
  }
  const folded = (trainable ? undefined : ctx.folded(node)) as FoldedConv | undefined;
  const { filter, bias } = folded ?? foldConvBn(op.conv, op.bn, (n) => ctx.weight(n));
  const fusable = FUSED.has(op.act.name) && op.act.maxValue == null;
  if (!trainable) {
    const act = fusable ? (op.act.name as 'relu') : 'linear';
    return applyAct(frozenConvForward(x, filter, bias, op.conv, act) ?? conv(x, op.conv, filter, bias, act), fusable ? { name: 'linear' } : op.act);
  }
  if (ctx.fusedUnits && fusable) return convBnAct(x, filter, bias, op.conv, op.act.name as 'relu6');
  return applyAct(conv(x, op.conv, filter, bias, 'linear'), op.act);
}

/** BatchNorm with batch statistics; updates the moving averages (Keras momentum). */
function batchNormTrain(z: tf.Tensor, bn: BnPart, ctx: RunContext): tf.Tensor {
  const { mean, variance } = tf.moments(z, [0, 1, 2].slice(0, z.rank - 1));
  tf.tidy(() => {
    const m = bn.momentum;
    const mm = ctx.weight(bn.mean) as tf.Variable;
    const mv = ctx.weight(bn.variance) as tf.Variable;
    mm.assign(tf.add(tf.mul(mm, m), tf.mul(mean, 1 - m)));
    mv.assign(tf.add(tf.mul(mv, m), tf.mul(variance, 1 - m)));
  });
  const gamma = bn.gamma ? ctx.weight(bn.gamma) : undefined;
  const beta = bn.beta ? ctx.weight(bn.beta) : undefined;
  return tf.batchNorm(z, mean, variance, beta as tf.Tensor1D, gamma as tf.Tensor1D, bn.epsilon);
}

function runBn(node: NetNode, op: Extract<NodeOp, { kind: 'bn' }>, x: tf.Tensor, ctx: RunContext): tf.Tensor {
  const trainable = ctx.trainable(node);
  if (trainable && ctx.batchStats) return applyAct(batchNormTrain(x, op.bn, ctx), op.act);
  const f = ((trainable ? undefined : ctx.folded(node)) as FoldedBn | undefined) ?? bnAffine(op.bn, (n) => ctx.weight(n));
  return applyAct(tf.add(tf.mul(x, f.scale), f.shift), op.act);
}

function merge(op: Extract<NodeOp, { kind: 'merge' }>, ins: tf.Tensor[]): tf.Tensor {
  switch (op.op) {
    case 'add': return ins.length === 2 ? tf.add(ins[0], ins[1]) : tf.addN(ins);
    case 'subtract': return tf.sub(ins[0], ins[1]);
    case 'multiply': return ins.reduce((a, b) => tf.mul(a, b));
    case 'average': return tf.div(tf.addN(ins), ins.length);
    case 'maximum': return ins.reduce((a, b) => tf.maximum(a, b));
    case 'minimum': return ins.reduce((a, b) => tf.minimum(a, b));
    case 'concat': return tf.concat(ins, op.axis);
  }
}

/** Run one node on its input tensors. */
export function runNode(node: NetNode, ins: tf.Tensor[], ctx: RunContext): tf.Tensor {
  const op = node.op;
  const x = ins[0];
  switch (op.kind) {
    case 'conv': return runConv(node, op, x as tf.Tensor4D, ctx);
    case 'bn': return runBn(node, op, x, ctx);
    case 'act': return applyAct(x, op.act);
    case 'pad': return tf.pad(x, [[0, 0], op.padding[0], op.padding[1], [0, 0]]);
    case 'merge': return merge(op, ins);
    case 'globalPool': return op.op === 'avg' ? tf.mean(x, [1, 2], op.keepDims) : tf.max(x, [1, 2], op.keepDims);
    case 'pool': {
      const args = [x as tf.Tensor4D, op.poolSize, op.strides, op.padding] as const;
      return op.op === 'max' ? tf.maxPool(...args) : tf.avgPool(...args);
    }
    case 'dense': {
      const flat = x.rank === 2 ? (x as tf.Tensor2D) : tf.reshape(x, [-1, x.shape[x.rank - 1]]) as tf.Tensor2D;
      const bias = op.bias ? ctx.weight(op.bias) : undefined;
      const fusable = FUSED.has(op.act.name) && op.act.maxValue == null && !ctx.trainable(node);
      let y: tf.Tensor = tf.fused.matMul({ a: flat, b: ctx.weight(op.kernel) as tf.Tensor2D, bias, activation: fusable ? (op.act.name as 'relu') : 'linear' });
      if (x.rank !== 2) y = tf.reshape(y, [...x.shape.slice(0, -1), y.shape[1]!]);
      return fusable ? y : applyAct(y, op.act);
    }
    case 'reshape': return tf.reshape(x, [x.shape[0], ...op.targetShape]);
    case 'flatten': return tf.reshape(x, [x.shape[0], -1]);
    case 'identity': return x;
  }
}

type ConvNode = NetNode & { op: Extract<NodeOp, { kind: 'conv' }> };

const clampOf = (act: Act): Clamp | undefined => {
  if (act.maxValue != null) return undefined;
  return act.name === 'linear' ? null : act.name === 'relu' ? [0, Infinity] : act.name === 'relu6' ? [0, 6] : undefined;
};
const isPointwise = (n: NetNode): n is ConvNode => n.op.kind === 'conv' && !n.op.conv.depthwise && n.op.conv.kernelShape[0] === 1 && n.op.conv.kernelShape[1] === 1 && n.op.conv.strides[0] === 1 && n.op.conv.strides[1] === 1 && (n.op.conv.pad === 'same' || n.op.conv.pad === 'valid');

/**
 * A frozen inverted-residual block starting at nodes[i] ([1x1 expand ->] depthwise -> 1x1
 * project [-> add of the block's input]), each intermediate used only inside it, when the
 * block kernel handles it: how many nodes it covers (with the add), its attributes and its convs.
 */
function blockAt(nodes: NetNode[], i: number, uses: Map<string, number>, outputKey: string, env: Map<string, tf.Tensor>, ctx: RunContext): { count: number; attrs: InvertedResidualAttrs; expand?: ConvNode; dw: ConvNode; project: ConvNode } | null {
  const first = nodes[i];
  const expand = isPointwise(first) ? first : undefined;
  const dw = nodes[i + (expand ? 1 : 0)];
  const project = nodes[i + (expand ? 2 : 1)];
  if (!dw || !project || dw.op.kind !== 'conv' || !dw.op.conv.depthwise || !isPointwise(project)) return null;
  const chain = expand ? [expand, dw, project] : [dw, project];
  for (let j = 1; j < chain.length; j++) if (chain[j].inputs.length !== 1 || chain[j].inputs[0] !== chain[j - 1].key) return null;
  for (const n of chain) if (ctx.trainable(n)) return null;
  for (const n of chain.slice(0, -1)) if (uses.get(n.key) !== 1 || n.key === outputKey) return null;
  const clamps = chain.map((n) => clampOf((n as ConvNode).op.act));
  if (clamps.some((c) => c === undefined)) return null;
  const inputKey = first.inputs[0];
  const add = nodes[i + chain.length];
  const residual = !!add && add.op.kind === 'merge' && add.op.op === 'add' && add.inputs.length === 2 && add.inputs.includes(project.key) && add.inputs.includes(inputKey) && uses.get(project.key) === 1 && project.key !== outputKey;
  const x = env.get(inputKey)?.shape;
  const c = (dw as ConvNode).op.conv;
  const attrs: InvertedResidualAttrs = { expand: !!expand, expandClamp: expand ? clamps[0]! : null, dwClamp: clamps[chain.length - 2]!, projectClamp: clamps[chain.length - 1]!, residual, strides: c.strides, pad: c.pad, dilations: c.dilations };
  if (!x || !invertedResidualSupported(x, { ef: expand?.op.conv.kernelShape, df: c.kernelShape, pf: project.op.conv.kernelShape }, attrs)) return null;
  return { count: chain.length + (residual ? 1 : 0), attrs, expand, dw: dw as ConvNode, project };
}

/** Run a block found by blockAt on x (frozen: folded weights). */
function runBlock(b: NonNullable<ReturnType<typeof blockAt>>, x: tf.Tensor4D, ctx: RunContext): tf.Tensor {
  const weights = (n: ConvNode) => {
    const { filter, bias } = (ctx.folded(n) as FoldedConv | undefined) ?? foldConvBn(n.op.conv, n.op.bn, (k) => ctx.weight(k));
    return [filter, bias ?? tf.zeros([filter.shape[n.op.conv.depthwise ? 2 : 3]])] as const;
  };
  const [ef, eb] = b.expand ? weights(b.expand) : [undefined, undefined];
  const [df, db] = weights(b.dw);
  const [pf, pb] = weights(b.project);
  return invertedResidual(x, { ef, eb, df, db, pf, pb }, b.attrs);
}

/**
 * Run `nodes` (a contiguous slice in topological order) from `inputKey` = x to `outputKey`.
 * Intermediates are disposed as soon as their last consumer ran; `x` is never disposed.
 */
export function runNodes(nodes: NetNode[], inputKey: string, x: tf.Tensor, outputKey: string, ctx: RunContext): tf.Tensor {
  const remaining = new Map<string, number>();
  for (const n of nodes) for (const i of n.inputs) remaining.set(i, (remaining.get(i) ?? 0) + 1);
  const uses = new Map(remaining);
  const blocks = ctx.noTape && invertedResidualsEnabled();
  const env = new Map<string, tf.Tensor>([[inputKey, x]]);
  for (let at = 0; at < nodes.length; at++) {
    let n = nodes[at];
    const block = blocks ? blockAt(nodes, at, uses, outputKey, env, ctx) : null;
    let inputs = n.inputs;
    let y: tf.Tensor;
    if (block) {
      // The block's nodes run as one; their outside inputs are consumed as theirs would be.
      const covered = nodes.slice(at, at + block.count);
      inputs = covered.flatMap((c) => c.inputs).filter((k) => !covered.some((c) => c.key === k));
      n = covered[covered.length - 1];
      y = runBlock(block, env.get(covered[0].inputs[0]) as tf.Tensor4D, ctx);
      at += block.count - 1;
    } else {
      const ins = n.inputs.map((k) => {
        const t = env.get(k);
        if (!t) throw new Error(`internal: tensor "${k}" needed by "${n.key}" is not available`);
        return t;
      });
      y = runNode(n, ins, ctx);
    }
    env.set(n.key, y);
    for (const k of inputs) {
      const left = remaining.get(k)! - 1;
      remaining.set(k, left);
      if (left > 0 || k === outputKey) continue;
      const t = env.get(k)!;
      env.delete(k);
      // Identity-like nodes return their input object: only dispose unaliased tensors.
      let aliased = t === x;
      for (const v of env.values()) if (v === t) aliased = true;
      if (!aliased) t.dispose();
    }
  }
  const out = env.get(outputKey);
  if (!out) throw new Error(`internal: output "${outputKey}" was not produced`);
  return out;
}
