/**
 * Parameter groups are data (fastai splitter / freeze_to / slice(lo, hi); timm layer-wise
 * decay): the backbone yields ordered groups (stem ... top), the head comes last, and
 * freezing, discriminative learning rates and progressive unfreezing are plain operations
 * on that list. Nothing here touches tensors, so the whole plan is testable as numbers and
 * can be shown to the user before training starts.
 */
import { AppError } from '../../shared/errors';
import type { TrainConfig } from './config';

export const HEAD_GROUP = 'head';

export interface UnfreezeStep {
  /** Unfreeze once this many epochs have completed. */
  afterEpoch: number;
  /** Backbone group indices unfrozen at this stage. */
  groups: number[];
  lrMult: number;
}

export interface GroupPlan {
  /** Backbone group names, input to output. */
  names: string[];
  /** Backbone groups trainable from the first epoch. */
  initial: number[];
  stages: UnfreezeStep[];
  /** Discriminative lr of each backbone group (before a stage's lrMult). */
  baseLrs: number[];
  headLr: number;
  /**
   * Index of the earliest group ever trainable during the run (names.length when the
   * backbone stays frozen): everything before it is a frozen prefix for the whole plan,
   * so its output can be cached (feature-cache.ts).
   */
  earliestTrainable: number;
}

function unknownGroup(name: string, names: string[]): AppError {
  return new AppError('invalid-config', `Unknown layer group "${name}". This backbone's groups are: ${names.join(', ')}.`);
}

/** Backbone groups trainable from the start, per `config.trainable`. */
export function initialTrainable(config: TrainConfig, names: string[]): number[] {
  const t = config.trainable;
  const G = names.length;
  if (t.mode === 'head') return [];
  if (t.mode === 'all') return names.map((_, i) => i);
  if (t.mode === 'last') return names.map((_, i) => i).slice(Math.max(0, G - t.last));
  return t.groups.map((n) => {
    const i = names.indexOf(n);
    if (i < 0) throw unknownGroup(n, names);
    return i;
  }).sort((a, b) => a - b);
}

/**
 * Discriminative learning rates per backbone group (the head always gets `optimizer.lr`):
 * uniform, explicit per name, geometric slice(lo, hi) over groups + head, or layer-wise
 * decay^k with k = 1 for the group right below the head.
 */
export function discriminativeLrs(config: TrainConfig, names: string[]): number[] {
  const hi = config.optimizer.lr;
  const G = names.length;
  const l = config.lrs;
  switch (l.mode) {
    case 'uniform':
      return names.map(() => hi);
    case 'explicit': {
      for (const n of Object.keys(l.perGroup)) if (n !== HEAD_GROUP && !names.includes(n)) throw unknownGroup(n, names);
      return names.map((n) => l.perGroup[n] ?? hi);
    }
    case 'slice': {
      const lo = l.lo ?? hi / 100;
      // fastai: lrs = geometric from lo to hi over all param groups, the head being the last.
      return names.map((_, i) => lo * (hi / lo) ** (G === 0 ? 1 : i / G));
    }
    case 'layerwise':
      return names.map((_, i) => hi * l.decay ** (G - i));
  }
}

/**
 * Resolve progressive unfreezing stages to group indices: each stage unfreezes the next
 * `groups` still-frozen groups walking from the head towards the input.
 */
export function unfreezeSteps(config: TrainConfig, names: string[], initial: number[]): UnfreezeStep[] {
  const trainable = new Set(initial);
  const stages = [...config.unfreeze.stages].sort((a, b) => a.afterEpoch - b.afterEpoch);
  const out: UnfreezeStep[] = [];
  for (const s of stages) {
    const picked: number[] = [];
    for (let i = names.length - 1; i >= 0 && picked.length < s.groups; i--) {
      if (!trainable.has(i)) picked.push(i);
    }
    picked.forEach((i) => trainable.add(i));
    if (picked.length) out.push({ afterEpoch: s.afterEpoch, groups: picked.sort((a, b) => a - b), lrMult: s.lrMult });
  }
  return out;
}

/** The whole freezing / lr plan of a run for a backbone with these group names. */
export function planGroups(config: TrainConfig, names: string[]): GroupPlan {
  const initial = initialTrainable(config, names);
  const stages = unfreezeSteps(config, names, initial);
  const ever = [...initial, ...stages.flatMap((s) => s.groups)];
  return {
    names,
    initial,
    stages,
    baseLrs: discriminativeLrs(config, names),
    headLr: config.optimizer.lr,
    earliestTrainable: ever.length ? Math.min(...ever) : names.length,
  };
}

/** Backbone groups trainable once `epochsDone` epochs have completed. */
export function trainableAfter(plan: GroupPlan, epochsDone: number): Set<number> {
  const s = new Set(plan.initial);
  for (const st of plan.stages) if (st.afterEpoch <= epochsDone) st.groups.forEach((g) => s.add(g));
  return s;
}

/** The stage (if any) that unfreezes groups exactly when `epochsDone` epochs have completed. */
export function stageAt(plan: GroupPlan, epochsDone: number): UnfreezeStep | undefined {
  return plan.stages.find((s) => s.afterEpoch === epochsDone && epochsDone > 0);
}

/** Peak lr of backbone group `i` (its discriminative lr x the lrMult of the stage that unfroze it). */
export function groupLr(plan: GroupPlan, i: number): number {
  const st = plan.stages.find((s) => s.groups.includes(i));
  return plan.baseLrs[i] * (st ? st.lrMult : 1);
}

/** A readable summary for logs and the GUI: which groups train when, at which lr. */
export function describePlan(plan: GroupPlan): { group: string; lr: number; fromEpoch: number | null }[] {
  const rows = plan.names.map((name, i) => {
    const st = plan.stages.find((s) => s.groups.includes(i));
    const fromEpoch = plan.initial.includes(i) ? 1 : st ? st.afterEpoch + 1 : null;
    return { group: name, lr: groupLr(plan, i), fromEpoch };
  });
  rows.push({ group: HEAD_GROUP, lr: plan.headLr, fromEpoch: 1 });
  return rows;
}
