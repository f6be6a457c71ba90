import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../src/main/engine/backend';
import { optimizerSchema } from '../../../src/main/engine/config';
import { GroupedOptimizer } from '../../../src/main/engine/optimizers';
import { adamStep } from '../../../src/main/engine/kernels/adam';
import { gemmFor, gemmThreadCount, setGemmThreads } from '../../../src/main/engine/kernels/gemm-simd';

before(async () => {
  await initBackend();
});

let counter = 0;
// Seven values: on wasm the first four take the SIMD loop, the last three the scalar tail.
const P0 = [0.5, -1, 2, 0.25, -0.75, 1.5, -2];
const GRADS = [
  [0.1, -0.2, 0.3, 0.02, -0.5, 0.7, 0],
  [0.05, 0.1, -0.4, -0.03, 0.2, -0.1, 0.6],
  [-0.3, 0.2, 0.1, 0.04, 0.3, 0.05, -0.2],
];

/** Runs the optimiser over GRADS on two groups (w: decays; b: a "bias" excluded from decay). */
function runOpt(cfg: Record<string, unknown>, lrs: [number, number], wd: number, steps = GRADS.length, opt?: GroupedOptimizer) {
  const o = opt ?? new GroupedOptimizer(optimizerSchema.parse(cfg));
  const w = tf.variable(tf.tensor1d(P0), true, `w_${++counter}`);
  const b = tf.variable(tf.tensor1d(P0), true, `b_${counter}`);
  o.setGroups([
    { name: 'g1', variables: [w], weightDecay: wd, noDecay: () => false },
    { name: 'g2', variables: [b], weightDecay: wd, noDecay: () => true },
  ]);
  for (let t = 0; t < steps; t++) {
    const g = tf.tensor1d(GRADS[t]);
    o.applyGradients({ [w.name]: g, [b.name]: g }, lrs);
    g.dispose();
  }
  const out = { w: Array.from(w.dataSync()), b: Array.from(b.dataSync()), opt: o };
  w.dispose();
  b.dispose();
  return out;
}

/** PyTorch's update rules in plain numbers, for one parameter vector. */
function reference(kind: 'sgd' | 'adam' | 'adamw', lr: number, wd: number, o: { momentum?: number; nesterov?: boolean } = {}): number[] {
  const p = [...P0];
  const m = P0.map(() => 0);
  const v = P0.map(() => 0);
  const buf: (number | null)[] = P0.map(() => null);
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  GRADS.forEach((gs, t) => {
    for (let i = 0; i < P0.length; i++) {
      let g = gs[i];
      if (kind === 'sgd') {
        g += wd * p[i];
        const mom = o.momentum ?? 0;
        if (mom > 0) {
          buf[i] = buf[i] === null ? g : (buf[i] as number) * mom + g;
          g = o.nesterov ? g + mom * (buf[i] as number) : (buf[i] as number);
        }
        p[i] -= lr * g;
      } else {
        if (kind === 'adam') g += wd * p[i];
        else p[i] *= 1 - lr * wd;
        m[i] = b1 * m[i] + (1 - b1) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
        const mh = m[i] / (1 - b1 ** (t + 1));
        const vh = v[i] / (1 - b2 ** (t + 1));
        p[i] -= (lr * mh) / (Math.sqrt(vh) + eps);
      }
    }
  });
  return p;
}

const near = (a: number[], b: number[], tol = 1e-5) => a.forEach((x, i) => assert.ok(Math.abs(x - b[i]) < tol, `${a} vs ${b}`));

test('SGD with momentum and Nesterov, L2 decay, per-group lr, bias excluded from decay', () => {
  for (const nesterov of [false, true]) {
    const r = runOpt({ name: 'sgd', momentum: 0.9, nesterov }, [0.1, 0.05], 0.01);
    near(r.w, reference('sgd', 0.1, 0.01, { momentum: 0.9, nesterov }));
    near(r.b, reference('sgd', 0.05, 0, { momentum: 0.9, nesterov }));
    r.opt.dispose();
  }
  const plain = runOpt({ name: 'sgd', momentum: 0 }, [0.1, 0.1], 0);
  near(plain.w, reference('sgd', 0.1, 0));
  plain.opt.dispose();
});

test('Adam adds L2 to the gradient; AdamW decays the weights directly', () => {
  const adam = runOpt({ name: 'adam' }, [0.01, 0.02], 0.1);
  near(adam.w, reference('adam', 0.01, 0.1));
  near(adam.b, reference('adam', 0.02, 0));
  const adamw = runOpt({ name: 'adamw' }, [0.01, 0.02], 0.1);
  near(adamw.w, reference('adamw', 0.01, 0.1));
  near(adamw.b, reference('adamw', 0.02, 0));
  assert.notDeepEqual(adam.w, adamw.w);
  // excludeBiasAndNorm: false puts the "bias" under decay too
  const all = runOpt({ name: 'adamw', excludeBiasAndNorm: false }, [0.01, 0.02], 0.1);
  near(all.b, reference('adamw', 0.02, 0.1));
  [adam, adamw, all].forEach((r) => r.opt.dispose());
});

test('optimizer state round-trips: a restored optimiser continues exactly', () => {
  const cfg = optimizerSchema.parse({ name: 'adamw' });
  const first = runOpt(cfg, [0.01, 0.01], 0.1, 2);
  const state = first.opt.getState();
  assert.equal(Object.keys(state.slots).length, 2);
  assert.equal(state.slots['g1/0'].step, 2);
  const restored = new GroupedOptimizer(cfg);
  restored.setState(JSON.parse(JSON.stringify({ ...state, slots: {} })));
  restored.setState(state);
  assert.equal(restored.slotTensors, 4);
  // Continue the third step from the state after two steps, starting from the weights after two steps.
  const w = tf.variable(tf.tensor1d(first.w), true, `w_${++counter}`);
  restored.setGroups([{ name: 'g1', variables: [w], weightDecay: 0.1, noDecay: () => false }]);
  const g = tf.tensor1d(GRADS[2]);
  restored.applyGradients({ [w.name]: g }, [0.01]);
  near(Array.from(w.dataSync()), reference('adamw', 0.01, 0.1));
  const before = tf.memory().numTensors;
  restored.reset();
  assert.equal(tf.memory().numTensors, before - 4);
  [w, g].forEach((t) => t.dispose());
  first.opt.dispose();
  restored.dispose();
});

test('the Adam kernel shared with the helper thread (two threads: half the vectors each) gives the one-thread result bit for bit, and matches the float64 update', (t) => {
  if (tf.getBackend() !== 'wasm' || !gemmFor(tf.backend())?.helper()) return t.skip('no helper thread');
  const n = 112 * 1280 + 3; // the last 3 floats go through the JS loop
  const p = tf.randomNormal([n], 0, 1, 'float32', 1);
  const g = tf.randomNormal([n], 0, 1, 'float32', 2);
  const m = tf.randomNormal([n], 0, 0.1, 'float32', 3);
  const v = tf.abs(tf.randomNormal([n], 0, 0.1, 'float32', 4));
  const attrs = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, l2: 0, decoupled: 1e-5, bc1: 1 - 0.9 ** 3, bc2: 1 - 0.999 ** 3 };
  const before = gemmThreadCount();
  const run = (threads: number) => {
    setGemmThreads(threads);
    const out = adamStep(p, g, m, v, attrs)!;
    const values = out.map((x) => x.dataSync().slice());
    tf.dispose(out);
    return values;
  };
  try {
    const [two, one] = [run(2), run(1)];
    assert.deepEqual(two, one);
    const [pv, gv, mv, vv] = [p, g, m, v].map((x) => x.dataSync());
    for (const i of [0, 1, n >> 1, n - 4, n - 1]) {
      const mi = mv[i] * attrs.beta1 + gv[i] * (1 - attrs.beta1);
      const vi = vv[i] * attrs.beta2 + gv[i] * gv[i] * (1 - attrs.beta2);
      const want = pv[i] * (1 - attrs.decoupled) - (mi / attrs.bc1 / (Math.sqrt(vi / attrs.bc2) + attrs.eps)) * attrs.lr;
      assert.ok(Math.abs(one[0][i] - want) < 1e-6 * Math.max(1, Math.abs(want)), `p[${i}] ${one[0][i]} vs ${want}`);
    }
  } finally {
    setGemmThreads(before);
  }
  tf.dispose([p, g, m, v]);
});
