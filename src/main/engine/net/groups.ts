/**
 * Splits a backbone into ordered layer groups (stem, blocks, top): the units that freezing,
 * discriminative learning rates and progressive unfreezing act on (fastai's splitter).
 * Known families are split by layer name; anything else at merge (Add) boundaries or into
 * about eight chunks. A group boundary is always a point where exactly one tensor is live,
 * so "the activation entering group i" is a single tensor that can be cached.
 */
import type { RawLayer } from './topology';

export interface GroupSplit {
  name: string;
  /** Keras layer names, in topological order. */
  layers: string[];
}

type Namer = [RegExp, (m: RegExpMatchArray) => string];

/** Name patterns of Keras applications; the first match names the layer's group. */
const NAMERS: Namer[] = [
  // MobileNetV2: Conv1_pad, Conv1, bn_Conv1, Conv1_relu, expanded_conv_* | block_k_* | Conv_1, Conv_1_bn, out_relu
  [/^(Conv1|bn_Conv1|expanded_conv)(_|$)/, () => 'stem'],
  [/^block_(\d+)_/, (m) => `block_${m[1]}`],
  [/^(Conv_1|Conv_1_bn|out_relu)$/, () => 'top'],
  // MobileNet v1: conv1, conv1_bn, conv1_relu | conv_dw_k*, conv_pw_k*, conv_pad_k
  [/^conv1(_|$)/, () => 'stem'],
  [/^conv_(?:dw|pw|pad)_(\d+)(_|$)/, (m) => `block_${m[1]}`],
  // ResNet (conv2_block1_*), EfficientNet (block1a_*, stem_*, top_*)
  [/^(conv\d+_block\d+)_/, (m) => m[1]],
  [/^(block\d+[a-z])_/, (m) => m[1]],
  [/^stem_/, () => 'stem'],
  [/^top_/, () => 'top'],
];

/** Positions p (1..n-1) where cutting before layer p leaves exactly one live tensor. */
export function singleTensorCuts(layers: RawLayer[], output: string): Set<number> {
  const index = new Map(layers.map((l, i) => [l.name, i]));
  const lastUse = layers.map(() => -1);
  layers.forEach((l, i) => {
    for (const x of l.inputs) lastUse[index.get(x)!] = Math.max(lastUse[index.get(x)!], i);
  });
  lastUse[index.get(output)!] = layers.length;
  const cuts = new Set<number>();
  for (let p = 1; p < layers.length; p++) {
    let live = 0;
    for (let q = 0; q < p && live < 2; q++) if (lastUse[q] >= p) live++;
    if (live === 1) cuts.add(p);
  }
  return cuts;
}

function isWeighted(l: RawLayer): boolean {
  return l.weightNames.length > 0;
}

/** Turn cut positions into groups; groups without weights merge into a neighbour. */
function fromCuts(layers: RawLayer[], cuts: number[], name: (k: number) => string): GroupSplit[] {
  const bounds = [1, ...cuts.filter((c) => c > 1 && c < layers.length), layers.length];
  const raw: RawLayer[][] = [];
  for (let k = 0; k + 1 < bounds.length; k++) if (bounds[k + 1] > bounds[k]) raw.push(layers.slice(bounds[k], bounds[k + 1]));
  const merged: RawLayer[][] = [];
  for (const g of raw) {
    if (merged.length && (!g.some(isWeighted) || !merged[merged.length - 1].some(isWeighted))) merged[merged.length - 1].push(...g);
    else merged.push([...g]);
  }
  return merged.map((g, k) => ({ name: name(k), layers: g.map((l) => l.name) }));
}

function byNames(layers: RawLayer[], cuts: Set<number>): GroupSplit[] | null {
  const names: (string | null)[] = layers.map((l, i) => {
    if (i === 0) return null;
    for (const [re, f] of NAMERS) {
      const m = l.name.match(re);
      if (m) return f(m);
    }
    return null;
  });
  if (!layers.some((l, i) => i > 0 && isWeighted(l) && names[i] != null)) return null;
  if (layers.some((l, i) => i > 0 && isWeighted(l) && names[i] == null)) return null;
  // Unnamed weightless layers (pooling, dropout, ...) join the group before them.
  const firstNamed = names.findIndex((n) => n != null);
  for (let i = 1; i < layers.length; i++) if (names[i] == null) names[i] = i < firstNamed ? names[firstNamed] : names[i - 1];
  const groups: GroupSplit[] = [];
  for (let i = 1; i < layers.length; i++) {
    const last = groups[groups.length - 1];
    if (last && last.name === names[i]) last.layers.push(layers[i].name);
    else {
      if (groups.some((g) => g.name === names[i])) return null; // not contiguous
      if (last && !cuts.has(i)) return null; // two tensors cross the boundary
      groups.push({ name: names[i]!, layers: [layers[i].name] });
    }
  }
  const weightedNames = new Set(layers.filter(isWeighted).map((l) => l.name));
  if (groups.length < 2 || groups.some((g) => !g.layers.some((n) => weightedNames.has(n)))) return null;
  return groups;
}

/**
 * Ordered groups covering every layer but the input exactly once. `layers` is in
 * topological order with the input first.
 */
export function splitGroups(layers: RawLayer[], output: string, chunks = 8): GroupSplit[] {
  const cuts = singleTensorCuts(layers, output);
  const named = byNames(layers, cuts);
  if (named) return named;
  const label = (k: number) => `group_${k + 1}`;
  const mergeCuts = [...cuts].filter((p) => layers[p - 1].spec.kind === 'merge').sort((a, b) => a - b);
  if (mergeCuts.length > 0) {
    const groups = fromCuts(layers, mergeCuts, label);
    if (groups.length >= 2) return groups;
  }
  // No usable merges: about `chunks` groups with equal numbers of weighted layers.
  const weighted = layers.map((l, i) => (isWeighted(l) ? i : -1)).filter((i) => i >= 0);
  const n = Math.max(1, Math.min(chunks, weighted.length));
  const candidates = [...cuts].sort((a, b) => a - b);
  const chosen: number[] = [];
  for (let k = 1; k < n; k++) {
    const ideal = weighted[Math.round((k * weighted.length) / n)];
    let best = -1;
    for (const c of candidates) if (c > (chosen[chosen.length - 1] ?? 1) && (best < 0 || Math.abs(c - ideal) < Math.abs(best - ideal))) best = c;
    if (best > 0) chosen.push(best);
  }
  return fromCuts(layers, chosen, label);
}
