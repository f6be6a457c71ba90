/**
 * The BackboneNet implementation over a compiled Keras graph. Weights live as plain
 * tensors ("masters") while their group is frozen and as tf.Variables while it trains;
 * frozen groups keep BatchNorm folded into their convs, refolded lazily after changes.
 */
import * as tf from '@tensorflow/tfjs';
import { AppError } from '../../../shared/errors';
import type { Preprocessing } from '../../../shared/preprocessing';
import type { CompiledNet, NetNode } from './compile';
import { bnAffine, foldConvBn, runNodes, type Folded, type RunContext } from './run';
import type { RawLayer } from './topology';
import type { BackboneForwardOptions, BackboneNet, LayerGroup } from './types';

let instances = 0;

/** Runs `f` with the gradient tape off, so a frozen forward inside a gradient closure saves nothing. */
function withoutTape<T>(f: () => T): T {
  const state = (tf.engine() as unknown as { state: { gradientDepth: number } }).state;
  const depth = state.gradientDepth;
  state.gradientDepth = 0;
  try {
    return f();
  } finally {
    state.gradientDepth = depth;
  }
}

export interface KerasBackboneOptions {
  id: string;
  preprocessing: Preprocessing;
  /** Use the hand-written fused conv+BN+ReLU6 gradient in trainable groups (default true). */
  fusedUnits?: boolean;
}

export class KerasBackbone implements BackboneNet {
  readonly id: string;
  readonly groups: LayerGroup[];
  readonly outputShape: number[];
  readonly preprocessing: Preprocessing;
  private readonly uid = `backbone${++instances}`;
  private readonly masters = new Map<string, tf.Tensor>();
  private readonly vars = new Map<string, tf.Variable>();
  private readonly groupOfWeight = new Map<string, number>();
  private readonly trainableNames = new Set<string>();
  private readonly noDecayNames = new Set<string>();
  private readonly folded = new Map<string, Folded>();
  private readonly dirty = new Set<number>();
  private readonly groupNodes: NetNode[][];
  private trainable = new Set<number>();
  private bnStats = false;
  private fusedUnits: boolean;
  private disposed = false;

  constructor(
    private readonly net: CompiledNet,
    layers: RawLayer[],
    groupLayers: { name: string; layers: string[] }[],
    weights: Map<string, tf.Tensor>,
    private readonly topology: unknown,
    opts: KerasBackboneOptions,
  ) {
    this.id = opts.id;
    this.preprocessing = opts.preprocessing;
    this.fusedUnits = opts.fusedUnits ?? true;
    this.outputShape = net.boundaryShapes[net.boundaryShapes.length - 1];
    const groupOfLayer = new Map<string, number>();
    groupLayers.forEach((g, i) => g.layers.forEach((l) => groupOfLayer.set(l, i)));
    const paramCounts = groupLayers.map(() => 0);
    for (const l of layers) {
      for (const name of l.weightNames) {
        const t = weights.get(name);
        if (!t) throw new AppError('model_incomplete', `Weight "${name}" of layer "${l.name}" is missing from the weight files. Copy the whole model folder again.`);
        const g = groupOfLayer.get(l.name)!;
        this.masters.set(name, t);
        this.groupOfWeight.set(name, g);
      }
      for (const name of l.trainableNames) {
        this.trainableNames.add(name);
        paramCounts[groupOfLayer.get(l.name)!] += weights.get(name)!.size;
        if (!/\/(kernel|depthwise_kernel)$/.test(name)) this.noDecayNames.add(name);
      }
    }
    for (const [name, t] of weights) if (!this.masters.has(name)) t.dispose();
    this.groups = groupLayers.map((g, i) => ({ name: g.name, layers: [...g.layers], paramCount: paramCounts[i] }));
    this.groupNodes = groupLayers.map((_, i) => net.nodes.filter((n) => n.group === i));
    this.groups.forEach((_, i) => this.dirty.add(i));
  }

  boundaryShape(i: number): number[] {
    this.checkIndex(i, this.groups.length, 'boundary');
    return [...this.net.boundaryShapes[i]];
  }

  setTrainable(groups: ReadonlySet<number>, options: { trainBatchNormStats?: boolean } = {}): void {
    this.checkAlive();
    for (const g of groups) this.checkIndex(g, this.groups.length - 1, 'group');
    const bnStats = options.trainBatchNormStats ?? false;
    const bnChanged = bnStats !== this.bnStats;
    for (let g = 0; g < this.groups.length; g++) {
      const was = this.trainable.has(g);
      const will = groups.has(g);
      if (was && (!will || bnChanged)) this.freezeGroup(g);
      if (will && (!was || bnChanged)) this.thawGroup(g, bnStats);
    }
    this.trainable = new Set(groups);
    this.bnStats = bnStats;
  }

  groupVariables(i: number): tf.Variable[] {
    this.checkIndex(i, this.groups.length - 1, 'group');
    if (!this.trainable.has(i)) return [];
    return [...this.vars.entries()].filter(([n, v]) => v.trainable && this.groupOfWeight.get(n) === i).map(([, v]) => v);
  }

  isNoDecay(v: tf.Variable): boolean {
    for (const [name, w] of this.vars) if (w === v) return this.noDecayNames.has(name);
    return false;
  }

  forwardFrozen(x: tf.Tensor, options: BackboneForwardOptions = {}): tf.Tensor {
    const [from, to] = this.range(x, options);
    if (from === to) return x.clone();
    for (let g = from; g < to; g++) if (this.dirty.has(g) && !this.trainable.has(g)) this.fold(g);
    return withoutTape(() => tf.tidy(() => this.run(x, from, to, false, true)));
  }

  forwardTrainable(x: tf.Tensor, options: BackboneForwardOptions & { training?: boolean } = {}): tf.Tensor {
    const [from, to] = this.range(x, options);
    if (from === to) return x.clone();
    for (let g = from; g < to; g++) if (this.dirty.has(g) && !this.trainable.has(g)) this.fold(g);
    return tf.tidy(() => this.run(x, from, to, options.training === true));
  }

  getWeights(): Map<string, tf.Tensor> {
    this.checkAlive();
    const out = new Map<string, tf.Tensor>();
    for (const name of this.masters.keys()) out.set(name, tf.keep(tf.clone(this.current(name))));
    return out;
  }

  setWeights(weights: Map<string, tf.Tensor>): void {
    this.checkAlive();
    for (const [name, t] of weights) {
      const old = this.masters.get(name);
      if (!old) {
        const known = [...this.masters.keys()];
        throw new AppError('weights_mismatch', `Unknown backbone weight "${name}". Expected Keras weight names such as ${known.slice(0, 3).map((k) => `"${k}"`).join(', ')} (${known.length} in all).`);
      }
      if (old.shape.join() !== t.shape.join()) {
        throw new AppError('weights_mismatch', `Weight "${name}" has shape [${t.shape.join(', ')}], expected [${old.shape.join(', ')}]. The weights come from a different backbone.`);
      }
    }
    for (const [name, t] of weights) {
      const v = this.vars.get(name);
      if (v) v.assign(t);
      else {
        this.masters.get(name)!.dispose();
        this.masters.set(name, tf.keep(tf.clone(t)));
        this.dirty.add(this.groupOfWeight.get(name)!);
      }
    }
  }

  modelTopology(): unknown {
    return JSON.parse(JSON.stringify(this.topology));
  }

  dispose(): void {
    if (this.disposed) return;
    for (const v of this.vars.values()) v.dispose();
    for (const t of this.masters.values()) t.dispose();
    for (const f of this.folded.values()) for (const t of Object.values(f)) (t as tf.Tensor | undefined)?.dispose();
    this.vars.clear();
    this.masters.clear();
    this.folded.clear();
    this.disposed = true;
  }

  /** Internal: switch between the fused-gradient units and tfjs autodiff (for tests and benches). */
  setFusedUnits(on: boolean): void {
    this.fusedUnits = on;
  }

  private current(name: string): tf.Tensor {
    return this.vars.get(name) ?? this.masters.get(name)!;
  }

  private run(x: tf.Tensor, from: number, to: number, training: boolean, noTape = false): tf.Tensor {
    const ctx: RunContext = {
      weight: (n) => this.current(n),
      folded: (node) => this.folded.get(node.key),
      trainable: (node) => this.trainable.has(node.group),
      batchStats: training && this.bnStats,
      fusedUnits: this.fusedUnits,
      noTape,
    };
    const nodes = this.groupNodes.slice(from, to).flat();
    return runNodes(nodes, this.net.boundaryKeys[from], x, this.net.boundaryKeys[to], ctx);
  }

  private fold(g: number): void {
    this.dropFolded(g);
    const w = (n: string) => this.masters.get(n)!;
    for (const node of this.groupNodes[g]) {
      const op = node.op;
      if (op.kind === 'conv') this.folded.set(node.key, keptFold(() => foldConvBn(op.conv, op.bn, w)));
      else if (op.kind === 'bn') this.folded.set(node.key, keptFold(() => bnAffine(op.bn, w)));
    }
    this.dirty.delete(g);
  }

  private dropFolded(g: number): void {
    for (const node of this.groupNodes[g]) {
      const f = this.folded.get(node.key);
      if (!f) continue;
      // An unfolded conv's "folded" params are the master tensors themselves: keep those.
      for (const t of Object.values(f) as tf.Tensor[]) if (t && ![...this.masters.values()].includes(t)) t.dispose();
      this.folded.delete(node.key);
    }
  }

  private thawGroup(g: number, bnStats: boolean): void {
    this.dropFolded(g);
    this.dirty.add(g);
    for (const [name, group] of this.groupOfWeight) {
      if (group !== g) continue;
      const trainable = this.trainableNames.has(name);
      if (!trainable && !bnStats) continue; // moving statistics stay constants
      this.vars.set(name, tf.variable(this.masters.get(name)!, trainable, `${this.uid}/${name}`));
    }
  }

  private freezeGroup(g: number): void {
    for (const [name, v] of [...this.vars]) {
      if (this.groupOfWeight.get(name) !== g) continue;
      this.masters.get(name)!.dispose();
      this.masters.set(name, tf.keep(tf.clone(v)));
      v.dispose();
      this.vars.delete(name);
    }
    this.dirty.add(g);
  }

  private range(x: tf.Tensor, options: BackboneForwardOptions): [number, number] {
    this.checkAlive();
    const from = options.from ?? 0;
    const to = options.to ?? this.groups.length;
    this.checkIndex(from, this.groups.length, 'from');
    this.checkIndex(to, this.groups.length, 'to');
    if (to < from) throw new AppError('invalid_argument', `Backbone forward range from=${from} to=${to} is empty; "to" must not be smaller than "from".`);
    const want = this.net.boundaryShapes[from];
    const spatialFree = from === 0 && want.length === 3;
    const ok = x.rank === want.length + 1 && (spatialFree ? x.shape[3] === want[2] : x.shape.slice(1).join() === want.join());
    if (!ok) {
      throw new AppError('invalid_argument', `Backbone "${this.id}" group ${from} (${this.groups[from]?.name ?? 'output'}) expects input [batch, ${want.join(', ')}], received [${x.shape.join(', ')}].`);
    }
    return [from, to];
  }

  private checkIndex(i: number, max: number, what: string): void {
    if (!Number.isInteger(i) || i < 0 || i > max) throw new AppError('invalid_argument', `Backbone ${what} index ${i} is out of range 0..${max} (${this.groups.length} groups: ${this.groups.map((g) => g.name).join(', ')}).`);
  }

  private checkAlive(): void {
    if (this.disposed) throw new AppError('disposed', `Backbone "${this.id}" was disposed; load it again.`);
  }
}

/** Compute folded parameters, keeping them and disposing the temporaries. */
function keptFold(f: () => Folded): Folded {
  let out!: Folded;
  tf.tidy(() => {
    out = f();
    for (const t of Object.values(out) as (tf.Tensor | undefined)[]) if (t) tf.keep(t);
  });
  return out;
}
