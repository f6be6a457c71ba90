/**
 * Turns parsed Keras layers into executor nodes: a ZeroPadding2D feeding a "valid" conv
 * becomes the conv's explicit padding, and a conv's BatchNorm and ReLU/ReLU6 join it in
 * one node, so the frozen path runs one fused kernel where tf.layers runs four. Shapes
 * are inferred here from the weights, so a mismatched weight file fails at load.
 */
import * as tf from '@tensorflow/tfjs';
import { AppError } from '../../../shared/errors';
import type { GroupSplit } from './groups';
import type { Act, LayerSpec, Padding2D, RawLayer } from './topology';

export type ExplicitPad = [[number, number], [number, number], [number, number], [number, number]];

export interface ConvPart {
  layer: string;
  depthwise: boolean;
  strides: [number, number];
  pad: 'same' | 'valid' | ExplicitPad;
  dilations: [number, number];
  kernel: string;
  bias?: string;
  /** [kh, kw, cin, cout] (depthwise: [kh, kw, cin, 1]). */
  kernelShape: number[];
}

export interface BnPart {
  layer: string;
  gamma?: string;
  beta?: string;
  mean: string;
  variance: string;
  epsilon: number;
  momentum: number;
}

export type NodeOp =
  | { kind: 'conv'; conv: ConvPart; bn?: BnPart; act: Act }
  | { kind: 'bn'; bn: BnPart; act: Act }
  | { kind: 'act'; act: Act }
  | { kind: 'pad'; padding: Padding2D }
  | { kind: 'dense'; layer: string; kernel: string; bias?: string; act: Act }
  | Extract<LayerSpec, { kind: 'merge' | 'globalPool' | 'pool' | 'reshape' | 'flatten' | 'identity' }>;

export interface NetNode {
  /** Name of the last Keras layer folded into this node: the key of its output tensor. */
  key: string;
  /** Keras layers this node runs, in order. */
  layers: string[];
  /** Keys of the nodes (or the input) feeding it. */
  inputs: string[];
  op: NodeOp;
  group: number;
  /** Output shape without batch. */
  outShape: number[];
}

export interface CompiledNet {
  input: string;
  inputShape: number[];
  output: string;
  nodes: NetNode[];
  /** boundaryKeys[i]: key of the tensor entering group i; boundaryKeys[groups] = output. */
  boundaryKeys: string[];
  boundaryShapes: number[][];
}

const FUSABLE_ACTS = new Set(['linear', 'relu', 'relu6']);

function isFusableAct(l: RawLayer | undefined): l is RawLayer & { spec: { kind: 'act' } } {
  return !!l && l.spec.kind === 'act' && FUSABLE_ACTS.has(l.spec.act.name) && l.spec.act.maxValue == null;
}

function bnPart(l: RawLayer): BnPart {
  const s = l.spec as Extract<LayerSpec, { kind: 'bn' }>;
  return { layer: l.name, gamma: s.scale ? `${l.name}/gamma` : undefined, beta: s.center ? `${l.name}/beta` : undefined, mean: `${l.name}/moving_mean`, variance: `${l.name}/moving_variance`, epsilon: s.epsilon, momentum: s.momentum };
}

function shapeOf(weights: Map<string, { shape: number[] }>, name: string, layer: string): number[] {
  const w = weights.get(name);
  if (!w) throw new AppError('model_incomplete', `Weight "${name}" of layer "${layer}" is missing from the weight files. Copy the whole model folder again.`);
  return w.shape;
}

function inferShape(op: NodeOp, ins: number[][], node: string, weights: Map<string, { shape: number[] }>): number[] {
  const [x] = ins;
  const bad = (why: string): never => {
    throw new AppError('model_invalid', `Layer "${node}" cannot take input of shape [${ins.map((s) => s.join(',')).join('] and [')}]: ${why}.`);
  };
  switch (op.kind) {
    case 'conv': {
      const c = op.conv;
      if (x.length !== 3 || x[2] !== c.kernelShape[2]) bad(`its kernel has shape [${c.kernelShape.join(',')}]`);
      const info = tf.backend_util.computeConv2DInfo([1, x[0], x[1], x[2]], c.kernelShape as [number, number, number, number], c.strides, c.dilations, c.pad as 'same', undefined, c.depthwise);
      if (info.outHeight <= 0 || info.outWidth <= 0) bad('the image is too small for it');
      for (const n of [op.bn?.gamma, op.bn?.mean, c.bias]) if (n && shapeOf(weights, n, node)[0] !== info.outChannels) bad(`weight "${n}" does not have ${info.outChannels} channels`);
      return [info.outHeight, info.outWidth, info.outChannels];
    }
    case 'bn':
      if (shapeOf(weights, op.bn.mean, node)[0] !== x[x.length - 1]) bad(`its statistics have ${shapeOf(weights, op.bn.mean, node)[0]} channels`);
      return x;
    case 'act':
    case 'identity':
      return x;
    case 'pad':
      if (x.length !== 3) bad('ZeroPadding2D needs a feature map');
      return [x[0] + op.padding[0][0] + op.padding[0][1], x[1] + op.padding[1][0] + op.padding[1][1], x[2]];
    case 'merge': {
      if (op.op !== 'concat') {
        if (ins.some((s) => s.join() !== x.join())) bad('merged tensors must have the same shape');
        return x;
      }
      const axis = op.axis < 0 ? x.length + op.axis : op.axis - 1;
      const out = [...x];
      out[axis] = ins.reduce((a, s) => a + s[axis], 0);
      return out;
    }
    case 'globalPool':
      if (x.length !== 3) bad('global pooling needs a feature map');
      return op.keepDims ? [1, 1, x[2]] : [x[2]];
    case 'pool': {
      const info = tf.backend_util.computePool2DInfo([1, x[0], x[1], x[2]], op.poolSize, op.strides, 1, op.padding);
      return [info.outHeight, info.outWidth, info.outChannels];
    }
    case 'dense': {
      const k = shapeOf(weights, op.kernel, node);
      if (x[x.length - 1] !== k[0]) bad(`its kernel has shape [${k.join(',')}]`);
      return [...x.slice(0, -1), k[1]];
    }
    case 'flatten':
      return [x.reduce((a, b) => a * b, 1)];
    case 'reshape': {
      const total = x.reduce((a, b) => a * b, 1);
      const known = op.targetShape.filter((d) => d !== -1 && d != null).reduce((a, b) => a * b, 1);
      const out = op.targetShape.map((d) => (d === -1 || d == null ? total / known : d));
      if (out.reduce((a, b) => a * b, 1) !== total) bad(`cannot reshape to [${op.targetShape.join(',')}]`);
      return out;
    }
  }
}

/**
 * Fuse layers into nodes (never across groups) and infer every shape. `inputSize` fills
 * unknown input height/width (a model saved with None spatial dims).
 */
export function compileNet(layers: RawLayer[], input: string, output: string, groups: GroupSplit[], weights: Map<string, { shape: number[] }>, inputSize: number): CompiledNet {
  const byName = new Map(layers.map((l) => [l.name, l]));
  const groupOf = new Map<string, number>();
  groups.forEach((g, i) => g.layers.forEach((n) => groupOf.set(n, i)));
  const consumers = new Map<string, string[]>(layers.map((l) => [l.name, []]));
  for (const l of layers) for (const i of l.inputs) consumers.get(i)!.push(l.name);
  /** The only consumer of `name`, if it is in the same group and `name` is not the output. */
  const soleNext = (name: string): RawLayer | undefined => {
    const cs = consumers.get(name)!;
    if (cs.length !== 1 || name === output || groupOf.get(cs[0]) !== groupOf.get(name)) return undefined;
    return byName.get(cs[0]);
  };
  const absorbed = new Set<string>();
  const nodes: NetNode[] = [];
  for (const l of layers) {
    if (l.spec.kind === 'input' || absorbed.has(l.name)) continue;
    const group = groupOf.get(l.name)!;
    const members = [l.name];
    let inputs = l.inputs;
    let op: NodeOp;
    const s = l.spec;
    if (s.kind === 'conv') {
      let pad: ConvPart['pad'] = s.padding;
      const prev = byName.get(l.inputs[0])!;
      if (s.padding === 'valid' && prev.spec.kind === 'pad' && soleNext(prev.name) === l && !nodes.some((n) => n.inputs.includes(prev.name))) {
        // The pad node was already emitted; replace it by explicit padding on the conv.
        const p = prev.spec.padding;
        pad = [[0, 0], p[0], p[1], [0, 0]];
        const idx = nodes.findIndex((n) => n.key === prev.name);
        nodes.splice(idx, 1);
        members.unshift(prev.name);
        inputs = prev.inputs;
      }
      const kernel = `${l.name}/${s.depthwise ? 'depthwise_kernel' : 'kernel'}`;
      const conv: ConvPart = { layer: l.name, depthwise: s.depthwise, strides: s.strides, pad, dilations: s.dilations, kernel, bias: s.useBias ? `${l.name}/bias` : undefined, kernelShape: shapeOf(weights, kernel, l.name) };
      let bn: BnPart | undefined;
      let act = s.act;
      let tail = l.name;
      const next = soleNext(l.name);
      if (act.name === 'linear' && next?.spec.kind === 'bn') {
        bn = bnPart(next);
        members.push(next.name);
        tail = next.name;
      }
      const after = soleNext(tail);
      if (act.name === 'linear' && isFusableAct(after)) {
        act = after.spec.act;
        members.push(after.name);
      }
      op = { kind: 'conv', conv, bn, act };
    } else if (s.kind === 'bn') {
      const after = soleNext(l.name);
      const fuse = isFusableAct(after);
      if (fuse) members.push(after.name);
      op = { kind: 'bn', bn: bnPart(l), act: fuse ? after.spec.act : { name: 'linear' } };
    } else if (s.kind === 'dense') {
      op = { kind: 'dense', layer: l.name, kernel: `${l.name}/kernel`, bias: s.useBias ? `${l.name}/bias` : undefined, act: s.act };
    } else {
      op = s as NodeOp;
    }
    for (const m of members) absorbed.add(m);
    nodes.push({ key: members[members.length - 1], layers: members, inputs, op, group, outShape: [] });
  }
  const inSpec = byName.get(input)!.spec as Extract<LayerSpec, { kind: 'input' }>;
  const inputShape = inSpec.shape.map((d, i) => d ?? (i < 2 ? inputSize : 3));
  const shapes = new Map<string, number[]>([[input, inputShape]]);
  for (const n of nodes) {
    n.outShape = inferShape(n.op, n.inputs.map((i) => shapes.get(i)!), n.key, weights);
    shapes.set(n.key, n.outShape);
  }
  // The tensor entering group i is the single one live at the cut (see groups.ts).
  const boundaryKeys = [input];
  for (let g = 1; g < groups.length; g++) {
    const produced = new Set([input, ...nodes.filter((n) => n.group < g).map((n) => n.key)]);
    const live = [...produced].filter((k) => nodes.some((n) => n.group >= g && n.inputs.includes(k)));
    if (live.length !== 1) throw new Error(`internal: ${live.length} tensors cross the boundary before group ${groups[g].name}`);
    boundaryKeys.push(live[0]);
  }
  boundaryKeys.push(output);
  return { input, inputShape, output, nodes, boundaryKeys, boundaryShapes: boundaryKeys.map((k) => shapes.get(k)!) };
}
