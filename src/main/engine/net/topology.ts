/**
 * Parses a Keras functional topology (model.json's modelTopology) into typed layer specs
 * in topological order. Only what a classification backbone needs is supported; anything
 * else fails early with the layer's name and class, before any weight is touched.
 */
import { AppError } from '../../../shared/errors';

export interface KerasLayerJson {
  name: string;
  class_name: string;
  config: Record<string, unknown>;
  inbound_nodes: unknown[];
}

export interface KerasModelConfig {
  name?: string;
  layers: KerasLayerJson[];
  input_layers: [string, number, number][];
  output_layers: [string, number, number][];
}

/** A Sequential model is a chain: give each layer its predecessor as inbound node. */
function sequentialAsFunctional(config: unknown, where: string): KerasModelConfig {
  const c = config as { name?: string; layers?: { class_name: string; config: Record<string, unknown> }[] } | { class_name: string; config: Record<string, unknown> }[];
  const original = Array.isArray(c) ? c : c.layers;
  if (!Array.isArray(original) || original.length === 0) throw new AppError('model_invalid', `${where} is a Sequential model without layers.`);
  const list = [...original];
  const layers: KerasLayerJson[] = [];
  let prev: string;
  if (list[0].class_name === 'InputLayer') {
    prev = String(list[0].config.name ?? 'input');
    layers.push({ name: prev, class_name: 'InputLayer', config: list.shift()!.config, inbound_nodes: [] });
  } else {
    const shape = list[0].config.batch_input_shape ?? list[0].config.batch_shape;
    if (!shape) throw new AppError('model_invalid', `${where} is a Sequential model whose first layer has no batch_input_shape, so its input size is unknown.`);
    prev = 'input';
    layers.push({ name: prev, class_name: 'InputLayer', config: { batch_input_shape: shape, name: prev }, inbound_nodes: [] });
  }
  for (const l of list) {
    const name = String(l.config.name);
    layers.push({ name, class_name: l.class_name, config: l.config, inbound_nodes: [[[prev, 0, 0, {}]]] });
    prev = name;
  }
  return { name: Array.isArray(c) ? 'sequential' : c.name, layers, input_layers: [[layers[0].name, 0, 0]], output_layers: [[prev, 0, 0]] };
}

/** Unwraps the functional model config from either Keras 2 layout tfjs writes. */
export function functionalConfig(modelTopology: Record<string, unknown>, where: string): KerasModelConfig {
  const wrapped = (modelTopology.model_config ?? modelTopology) as { class_name?: string; config?: KerasModelConfig };
  const cls = wrapped.class_name;
  if (cls === 'Sequential') return sequentialAsFunctional(wrapped.config as unknown, where);
  if ((cls !== 'Model' && cls !== 'Functional') || !wrapped.config || !Array.isArray(wrapped.config.layers)) {
    throw new AppError(
      'model_unsupported',
      `${where} holds a "${cls ?? 'unknown'}" model; the backbone executor needs a Keras functional model ("Model" or "Functional" with layers and inbound_nodes). Re-save it with tf.keras as a functional model and convert it with tensorflowjs_converter.`,
    );
  }
  return wrapped.config;
}


export interface Act {
  /** linear, relu, relu6, sigmoid, tanh, softmax, elu, selu, softplus, softsign, swish, hard_sigmoid, leaky_relu. */
  name: string;
  /** relu with a cap other than 6. */
  maxValue?: number;
  /** leaky_relu slope. */
  alpha?: number;
}

export type Padding2D = [[number, number], [number, number]];

export type LayerSpec =
  | { kind: 'input'; shape: (number | null)[] }
  | { kind: 'conv'; depthwise: boolean; kernelSize: [number, number]; strides: [number, number]; padding: 'same' | 'valid'; dilations: [number, number]; useBias: boolean; act: Act }
  | { kind: 'bn'; epsilon: number; momentum: number; center: boolean; scale: boolean }
  | { kind: 'act'; act: Act }
  | { kind: 'pad'; padding: Padding2D }
  | { kind: 'merge'; op: 'add' | 'multiply' | 'subtract' | 'average' | 'maximum' | 'minimum' | 'concat'; axis: number }
  | { kind: 'globalPool'; op: 'avg' | 'max'; keepDims: boolean }
  | { kind: 'pool'; op: 'avg' | 'max'; poolSize: [number, number]; strides: [number, number]; padding: 'same' | 'valid' }
  | { kind: 'dense'; units: number; useBias: boolean; act: Act }
  | { kind: 'reshape'; targetShape: number[] }
  | { kind: 'flatten' }
  | { kind: 'identity' };

export interface RawLayer {
  name: string;
  className: string;
  /** Names of the layers whose (single) outputs feed this one, in call order. */
  inputs: string[];
  spec: LayerSpec;
  /** Keras weight names this layer owns, e.g. ["conv1/kernel"]; in Keras order. */
  weightNames: string[];
  /** Subset of weightNames that are trainable (not BN moving statistics). */
  trainableNames: string[];
}

export const SUPPORTED_LAYERS = [
  'InputLayer', 'Conv2D', 'DepthwiseConv2D', 'BatchNormalization', 'ReLU', 'Activation', 'LeakyReLU', 'ZeroPadding2D',
  'Add', 'Multiply', 'Subtract', 'Average', 'Maximum', 'Minimum', 'Concatenate', 'GlobalAveragePooling2D',
  'GlobalMaxPooling2D', 'MaxPooling2D', 'AveragePooling2D', 'Dense', 'Reshape', 'Flatten', 'Dropout',
  'SpatialDropout2D', 'GaussianNoise', 'GaussianDropout', 'AlphaDropout', 'ActivityRegularization',
] as const;

const KNOWN_ACTS = ['linear', 'relu', 'relu6', 'sigmoid', 'tanh', 'softmax', 'elu', 'selu', 'softplus', 'softsign', 'swish', 'silu', 'hard_sigmoid'];

function fail(layer: KerasLayerJson, what: string): never {
  throw new AppError('unsupported_layer', `Layer "${layer.name}" (${layer.class_name}) ${what}. The backbone executor cannot run this model; use a backbone built from the supported layers.`);
}

function pair(v: unknown, layer: KerasLayerJson, field: string): [number, number] {
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2 && v.every((n) => typeof n === 'number')) return [v[0], v[1]];
  return fail(layer, `has ${field}=${JSON.stringify(v)}, expected a number or a pair of numbers`);
}

function parseAct(name: unknown, layer: KerasLayerJson): Act {
  const n = typeof name === 'string' ? name : (name as { class_name?: string } | null)?.class_name?.toLowerCase();
  if (typeof n !== 'string' || !KNOWN_ACTS.includes(n)) {
    return fail(layer, `uses activation ${JSON.stringify(name)}; supported activations: ${KNOWN_ACTS.join(', ')}`);
  }
  return { name: n === 'silu' ? 'swish' : n };
}

function channelsLast(layer: KerasLayerJson): void {
  const df = layer.config.data_format;
  if (df != null && df !== 'channels_last') fail(layer, `has data_format "${String(df)}"; only channels_last is supported`);
}

function padding(v: unknown, layer: KerasLayerJson): 'same' | 'valid' {
  if (v === 'same' || v === 'valid') return v;
  return fail(layer, `has padding ${JSON.stringify(v)}; expected "same" or "valid"`);
}

function zeroPadding(v: unknown, layer: KerasLayerJson): Padding2D {
  if (typeof v === 'number') return [[v, v], [v, v]];
  if (Array.isArray(v) && v.length === 2) {
    const [a, b] = v;
    if (typeof a === 'number' && typeof b === 'number') return [[a, a], [b, b]];
    if (Array.isArray(a) && Array.isArray(b)) return [pair(a, layer, 'padding'), pair(b, layer, 'padding')];
  }
  return fail(layer, `has padding ${JSON.stringify(v)}`);
}

function parseSpec(layer: KerasLayerJson): LayerSpec {
  const c = layer.config;
  switch (layer.class_name) {
    case 'InputLayer': {
      const shape = (c.batch_input_shape ?? c.batch_shape) as (number | null)[] | undefined;
      if (!Array.isArray(shape) || shape.length !== 4) fail(layer, `has input shape ${JSON.stringify(shape)}; an image backbone needs [batch, height, width, channels]`);
      return { kind: 'input', shape: shape.slice(1) };
    }
    case 'Conv2D':
    case 'DepthwiseConv2D': {
      channelsLast(layer);
      const depthwise = layer.class_name === 'DepthwiseConv2D';
      if (depthwise && (c.depth_multiplier ?? 1) !== 1) fail(layer, `has depth_multiplier ${String(c.depth_multiplier)}; only 1 is supported`);
      if (!depthwise && (c.groups ?? 1) !== 1) fail(layer, `has groups=${String(c.groups)}; grouped convolutions are not supported`);
      const strides = pair(c.strides ?? 1, layer, 'strides');
      const dilations = pair(c.dilation_rate ?? 1, layer, 'dilation_rate');
      if ((strides[0] > 1 || strides[1] > 1) && (dilations[0] > 1 || dilations[1] > 1)) fail(layer, 'combines strides > 1 with dilation_rate > 1');
      return { kind: 'conv', depthwise, kernelSize: pair(c.kernel_size, layer, 'kernel_size'), strides, padding: padding(c.padding ?? 'valid', layer), dilations, useBias: c.use_bias !== false, act: parseAct(c.activation ?? 'linear', layer) };
    }
    case 'BatchNormalization': {
      const axis = Array.isArray(c.axis) ? c.axis : [c.axis ?? -1];
      if (axis.length !== 1 || (axis[0] !== -1 && axis[0] !== 3)) fail(layer, `normalises axis ${JSON.stringify(c.axis)}; only the channel axis (-1 or 3) is supported`);
      return { kind: 'bn', epsilon: (c.epsilon as number) ?? 1e-3, momentum: (c.momentum as number) ?? 0.99, center: c.center !== false, scale: c.scale !== false };
    }
    case 'ReLU': {
      const slope = (c.negative_slope as number | null) ?? 0;
      const threshold = (c.threshold as number | null) ?? 0;
      const max = c.max_value as number | null | undefined;
      if (threshold !== 0) fail(layer, `has threshold ${threshold}; only 0 is supported`);
      if (slope !== 0 && max != null) fail(layer, 'combines negative_slope with max_value');
      if (slope !== 0) return { kind: 'act', act: { name: 'leaky_relu', alpha: slope } };
      if (max == null) return { kind: 'act', act: { name: 'relu' } };
      return { kind: 'act', act: max === 6 ? { name: 'relu6' } : { name: 'relu', maxValue: max } };
    }
    case 'LeakyReLU':
      return { kind: 'act', act: { name: 'leaky_relu', alpha: (c.alpha as number) ?? (c.negative_slope as number) ?? 0.3 } };
    case 'Activation':
      return { kind: 'act', act: parseAct(c.activation, layer) };
    case 'ZeroPadding2D':
      channelsLast(layer);
      return { kind: 'pad', padding: zeroPadding(c.padding ?? 1, layer) };
    case 'Add': case 'Multiply': case 'Subtract': case 'Average': case 'Maximum': case 'Minimum':
      return { kind: 'merge', op: layer.class_name.toLowerCase() as 'add', axis: -1 };
    case 'Concatenate':
      return { kind: 'merge', op: 'concat', axis: (c.axis as number) ?? -1 };
    case 'GlobalAveragePooling2D': case 'GlobalMaxPooling2D':
      channelsLast(layer);
      return { kind: 'globalPool', op: layer.class_name === 'GlobalMaxPooling2D' ? 'max' : 'avg', keepDims: c.keepdims === true };
    case 'MaxPooling2D': case 'AveragePooling2D': {
      channelsLast(layer);
      const poolSize = pair(c.pool_size ?? 2, layer, 'pool_size');
      return { kind: 'pool', op: layer.class_name === 'MaxPooling2D' ? 'max' : 'avg', poolSize, strides: pair(c.strides ?? poolSize, layer, 'strides'), padding: padding(c.padding ?? 'valid', layer) };
    }
    case 'Dense':
      return { kind: 'dense', units: c.units as number, useBias: c.use_bias !== false, act: parseAct(c.activation ?? 'linear', layer) };
    case 'Reshape':
      return { kind: 'reshape', targetShape: c.target_shape as number[] };
    case 'Flatten':
      return { kind: 'flatten' };
    case 'Dropout': case 'SpatialDropout2D': case 'GaussianNoise': case 'GaussianDropout': case 'AlphaDropout': case 'ActivityRegularization':
      // Training-time noise only; backbones are fine-tuned without it (heads add their own dropout).
      return { kind: 'identity' };
    default:
      throw new AppError(
        'unsupported_layer',
        `Layer "${layer.name}" has class "${layer.class_name}", which the backbone executor does not support. Supported classes: ${SUPPORTED_LAYERS.join(', ')}.`,
      );
  }
}

function weightNamesOf(name: string, spec: LayerSpec): { all: string[]; trainable: string[] } {
  const w = (s: string) => `${name}/${s}`;
  switch (spec.kind) {
    case 'conv': {
      const t = [w(spec.depthwise ? 'depthwise_kernel' : 'kernel'), ...(spec.useBias ? [w('bias')] : [])];
      return { all: t, trainable: t };
    }
    case 'dense': {
      const t = [w('kernel'), ...(spec.useBias ? [w('bias')] : [])];
      return { all: t, trainable: t };
    }
    case 'bn': {
      const t = [...(spec.scale ? [w('gamma')] : []), ...(spec.center ? [w('beta')] : [])];
      return { all: [...t, w('moving_mean'), w('moving_variance')], trainable: t };
    }
    default:
      return { all: [], trainable: [] };
  }
}

/** Layer names feeding a layer: Keras 2 `[[["name", 0, 0, {}]]]` or Keras 3 `{args: [keras tensors]}`. */
function inboundNames(layer: KerasLayerJson): string[] {
  const nodes = layer.inbound_nodes ?? [];
  if (nodes.length === 0) return [];
  if (nodes.length > 1) fail(layer, `is called ${nodes.length} times (a shared layer); each layer must be used once`);
  const node = nodes[0];
  const names: string[] = [];
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) {
      if (typeof v[0] === 'string' && typeof v[1] === 'number') {
        if (v[1] !== 0 || (v[2] ?? 0) !== 0) fail(layer, `reads output ${v[1]}/${v[2]} of "${v[0]}"; only single-output layers are supported`);
        names.push(v[0]);
      } else v.forEach(visit);
    } else if (v && typeof v === 'object') {
      const hist = (v as { config?: { keras_history?: unknown[] } }).config?.keras_history;
      if (Array.isArray(hist)) visit(hist);
      else if ('args' in (v as object)) visit((v as { args: unknown }).args);
    }
  };
  visit(node);
  return names;
}

/** Parse and validate every layer, returning them in a stable topological order. */
export function parseTopology(config: KerasModelConfig): { layers: RawLayer[]; input: string; output: string } {
  const byName = new Map<string, RawLayer>();
  const order: RawLayer[] = [];
  for (const l of config.layers) {
    if (byName.has(l.name)) throw new AppError('model_invalid', `Two layers are named "${l.name}"; layer names must be unique.`);
    const spec = parseSpec(l);
    const { all, trainable } = weightNamesOf(l.name, spec);
    const raw: RawLayer = { name: l.name, className: l.class_name, inputs: inboundNames(l), spec, weightNames: all, trainableNames: trainable };
    byName.set(l.name, raw);
    order.push(raw);
  }
  if (config.input_layers.length !== 1 || config.output_layers.length !== 1) {
    throw new AppError('model_unsupported', `The model has ${config.input_layers.length} inputs and ${config.output_layers.length} outputs; a backbone needs exactly one of each.`);
  }
  const input = config.input_layers[0][0];
  const output = config.output_layers[0][0];
  for (const l of order) {
    for (const i of l.inputs) if (!byName.has(i)) throw new AppError('model_invalid', `Layer "${l.name}" reads from "${i}", which is not a layer of the model.`);
    if (l.spec.kind !== 'input' && l.inputs.length === 0) throw new AppError('model_invalid', `Layer "${l.name}" has no inputs.`);
  }
  // Kahn's algorithm, preferring the file's order so groups follow the author's layout.
  const indeg = new Map(order.map((l) => [l.name, l.inputs.length]));
  const consumers = new Map<string, string[]>(order.map((l) => [l.name, []]));
  for (const l of order) for (const i of l.inputs) consumers.get(i)!.push(l.name);
  const position = new Map(order.map((l, i) => [l.name, i]));
  const ready = order.filter((l) => l.inputs.length === 0).map((l) => l.name);
  const sorted: RawLayer[] = [];
  while (ready.length) {
    ready.sort((a, b) => position.get(a)! - position.get(b)!);
    const name = ready.shift()!;
    sorted.push(byName.get(name)!);
    for (const c of consumers.get(name)!) {
      indeg.set(c, indeg.get(c)! - 1);
      if (indeg.get(c) === 0) ready.push(c);
    }
  }
  if (sorted.length !== order.length) throw new AppError('model_invalid', 'The model graph has a cycle.');
  // Layers that do not lead to the output are dropped (e.g. a cut model keeping dead branches).
  const needed = new Set<string>([output]);
  for (let i = sorted.length - 1; i >= 0; i--) if (needed.has(sorted[i].name)) for (const x of sorted[i].inputs) needed.add(x);
  const layers = sorted.filter((l) => needed.has(l.name));
  if (!needed.has(input) || byName.get(input)!.spec.kind !== 'input') throw new AppError('model_invalid', `The output "${output}" does not depend on the input "${input}".`);
  return { layers, input, output };
}
