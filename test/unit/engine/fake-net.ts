/**
 * A tiny BackboneNet and ImageSource for engine unit tests: four groups of 1x1 convolutions
 * (as matMul, so every backend can differentiate them) with BatchNorm, on synthetic images
 * whose colour depends on the class. Real enough to train, fast enough for every test.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackboneNet, LayerGroup } from '../../../src/main/engine/net/types';
import type { ImageSource } from '../../../src/main/engine/data';
import { MINUS_ONE_TO_ONE, type Preprocessing } from '../../../src/shared/preprocessing';
import { Rng } from '../../../src/main/engine/rng';

let netCounter = 0;

interface GroupSpec {
  name: string;
  cin: number;
  cout: number;
  bn: boolean;
}

const SPECS: GroupSpec[] = [
  { name: 'stem', cin: 3, cout: 8, bn: true },
  { name: 'block_1', cin: 8, cout: 8, bn: true },
  { name: 'block_2', cin: 8, cout: 12, bn: false },
  { name: 'top', cin: 12, cout: 16, bn: true },
];

export class FakeNet implements BackboneNet {
  readonly id = 'fake-net';
  readonly groups: LayerGroup[];
  readonly preprocessing: Preprocessing;
  readonly outputShape: number[];
  private weights = new Map<string, tf.Tensor>();
  private vars = new Map<string, tf.Variable>();
  private trainable = new Set<number>();
  private readonly tag = `fake${++netCounter}`;
  /** Counts forwardFrozen calls per (from,to), for tests that check the cache is used. */
  readonly frozenCalls: string[] = [];

  constructor(readonly size = 8, seed = 1, readonly vectorOutput = false) {
    this.preprocessing = { size, cropFraction: 0.875, trainCrop: 'random-resized-crop', scaling: MINUS_ONE_TO_ONE, channels: 3 };
    const rng = new Rng(seed);
    const rand = (shape: number[], scale: number, add = 0) => tf.tensor(Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (rng.next() * 2 - 1) * scale + add), shape);
    for (const s of SPECS) {
      this.weights.set(`${s.name}_conv/kernel`, rand([s.cin, s.cout], 1 / Math.sqrt(s.cin)));
      if (s.bn) {
        this.weights.set(`${s.name}_bn/gamma`, rand([s.cout], 0.1, 1));
        this.weights.set(`${s.name}_bn/beta`, rand([s.cout], 0.1));
        this.weights.set(`${s.name}_bn/moving_mean`, rand([s.cout], 0.1));
        this.weights.set(`${s.name}_bn/moving_variance`, rand([s.cout], 0.1, 1));
      } else {
        this.weights.set(`${s.name}_conv/bias`, rand([s.cout], 0.1));
      }
    }
    this.groups = SPECS.map((s) => ({ name: s.name, layers: [`${s.name}_conv`, `${s.name}_bn`], paramCount: 0 }));
    this.outputShape = vectorOutput ? [16] : [size, size, 16];
  }

  boundaryShape(i: number): number[] {
    if (i >= SPECS.length) return this.outputShape;
    return [this.size, this.size, SPECS[i].cin];
  }

  private w(name: string): tf.Tensor {
    return this.vars.get(name) ?? this.weights.get(name)!;
  }

  private groupNamesOf(i: number): string[] {
    return [...this.weights.keys()].filter((k) => k.startsWith(`${SPECS[i].name}_`) && !k.includes('moving_'));
  }

  setTrainable(groups: ReadonlySet<number>): void {
    for (const [name, v] of this.vars) {
      this.weights.get(name)!.dispose();
      this.weights.set(name, v.clone());
      v.dispose();
    }
    this.vars.clear();
    this.trainable = new Set(groups);
    for (const i of this.trainable) {
      for (const name of this.groupNamesOf(i)) this.vars.set(name, tf.variable(this.weights.get(name)!, true, `${this.tag}/${name}/${netCounter++}`));
    }
  }

  groupVariables(i: number): tf.Variable[] {
    return this.trainable.has(i) ? this.groupNamesOf(i).map((n) => this.vars.get(n)!) : [];
  }

  isNoDecay(v: tf.Variable): boolean {
    return /bias|gamma|beta/.test(v.name);
  }

  private run(x: tf.Tensor, from: number, to: number): tf.Tensor {
    return tf.tidy(() => {
      let h = x;
      for (let i = from; i < to; i++) {
        const s = SPECS[i];
        const shape = h.shape;
        let y = tf.matMul(h.reshape([-1, s.cin]), this.w(`${s.name}_conv/kernel`) as tf.Tensor2D);
        if (s.bn) {
          y = tf.batchNorm(y, this.w(`${s.name}_bn/moving_mean`), this.w(`${s.name}_bn/moving_variance`), this.w(`${s.name}_bn/beta`), this.w(`${s.name}_bn/gamma`), 1e-3);
        } else {
          y = y.add(this.w(`${s.name}_conv/bias`));
        }
        h = tf.relu(y).reshape([...shape.slice(0, -1), s.cout]);
      }
      if (to === SPECS.length && this.vectorOutput && h.rank === 4) h = tf.mean(h, [1, 2]);
      return h;
    });
  }

  forwardFrozen(x: tf.Tensor, o: { from?: number; to?: number } = {}): tf.Tensor {
    const from = o.from ?? 0;
    const to = o.to ?? SPECS.length;
    this.frozenCalls.push(`${from}-${to}`);
    return this.run(x, from, to);
  }

  forwardTrainable(x: tf.Tensor, o: { from?: number; to?: number } = {}): tf.Tensor {
    return this.run(x, o.from ?? 0, o.to ?? SPECS.length);
  }

  getWeights(): Map<string, tf.Tensor> {
    return new Map([...this.weights.keys()].map((k) => [k, this.w(k).clone()]));
  }

  setWeights(weights: Map<string, tf.Tensor>): void {
    for (const [k, t] of weights) {
      const v = this.vars.get(k);
      if (v) v.assign(t);
      else if (this.weights.has(k)) {
        this.weights.get(k)!.dispose();
        this.weights.set(k, t.clone());
      }
    }
  }

  modelTopology(): unknown {
    return {};
  }

  dispose(): void {
    this.vars.forEach((v) => v.dispose());
    this.weights.forEach((t) => t.dispose());
    this.vars.clear();
    this.weights.clear();
  }
}

/**
 * Synthetic images: class k tints the image towards one colour, plus per-image noise;
 * augmentation (when asked) adds epoch-dependent noise and a random mirror.
 */
export class FakeSource implements ImageSource {
  readonly numClasses: number;
  readonly classNames: string[];
  readonly labels: Int32Array;
  readonly paths: string[];
  loads = 0;

  constructor(
    readonly length: number,
    readonly imageSize = 8,
    numClasses = 2,
    private readonly seed = 7,
  ) {
    this.numClasses = numClasses;
    this.classNames = Array.from({ length: numClasses }, (_, k) => `class_${k}`);
    this.labels = Int32Array.from({ length }, (_, i) => i % numClasses);
    this.paths = Array.from({ length }, (_, i) => `/fake/${i}.png`);
  }

  async load(indices: number[], opts: { epoch: number; augment: boolean }): Promise<Uint8Array> {
    this.loads++;
    const S = this.imageSize;
    const out = new Uint8Array(indices.length * S * S * 3);
    indices.forEach((idx, k) => {
      const rng = new Rng(this.seed * 100_003 + idx);
      const aug = new Rng(this.seed * 7919 + idx * 31 + opts.epoch * 1_000_033);
      const y = this.labels[idx];
      const flip = opts.augment && aug.next() < 0.5;
      for (let p = 0; p < S * S; p++) {
        const px = flip ? Math.floor(p / S) * S + (S - 1 - (p % S)) : p;
        for (let c = 0; c < 3; c++) {
          const base = 60 + 120 * (c === y % 3 ? 1 : 0) + (p % S) * 4;
          const noise = (rng.next() - 0.5) * 80 + (opts.augment ? (aug.next() - 0.5) * 40 : 0);
          out[(k * S * S + px) * 3 + c] = Math.max(0, Math.min(255, Math.round(base + noise)));
        }
      }
    });
    return out;
  }

  async warm(): Promise<void> {}
}
