/**
 * The New experiment form: the target (dataset snapshot, backbone, strategy) plus the user's
 * edits as a sparse override of the config. The server resolves the strategy preset and the
 * overrides into the full config (`train:plan`), so the form always shows exactly what a run
 * would use; every edit re-plans (debounced). Lives in AppState so the form survives
 * switching screens.
 */
import { call } from '../lib/transport';
import { Loader } from '../lib/loader.svelte';
import type { LrFindResult, ResolvedPlan, StrategyName } from '../../../shared/contract/training';

type Json = Record<string, unknown>;

/** Read `a.b.c` from a nested object. */
export function getPath(obj: unknown, path: string): unknown {
  let cur: unknown = obj;
  for (const k of path.split('.')) {
    if (cur == null || typeof cur !== 'object') return undefined;
    cur = (cur as Json)[k];
  }
  return cur;
}

/** A copy of `obj` with `a.b.c` set (or removed when value is undefined). */
export function setPath(obj: Json, path: string, value: unknown): Json {
  const [head, ...rest] = path.split('.');
  const next = { ...obj };
  if (!rest.length) {
    if (value === undefined) delete next[head];
    else next[head] = value;
    return next;
  }
  const child = (obj[head] && typeof obj[head] === 'object' && !Array.isArray(obj[head]) ? obj[head] : {}) as Json;
  const updated = setPath(child, rest.join('.'), value);
  if (Object.keys(updated).length) next[head] = updated;
  else delete next[head];
  return next;
}

/** Fields kept when the strategy preset changes: they describe the budget, not the strategy. */
const KEPT_ACROSS_PRESETS = ['epochs', 'batchSize', 'seed', 'augment'];

/** One line per preset (the engine's strategies.ts holds the exact recipe). */
export const STRATEGY_HELP: Record<StrategyName, string> = {
  head: 'Backbone frozen; a new head learns on its features. Fastest; a strong baseline on small data.',
  progressive: 'Head first, then the last blocks unfreeze at a lower rate with a fresh optimiser (the PyTorch tutorial recipe).',
  discriminative: 'Everything trains, with rates rising from the stem to the head (fastai slice), one-cycle schedule.',
  full: 'Every layer trains at one small rate with warm-up and cosine decay. Slowest; needs the most data.',
  auto: 'Head warm-up, then the later blocks fine-tune: AdamW, label smoothing, cosine, flip TTA.',
};

export class ExperimentDraft {
  snapshotId = $state('');
  backbone = $state('mobilenet_v2_0.35_224');
  strategy = $state<StrategyName>('head');
  overrides = $state.raw<Json>({});
  name = $state('');
  experiment = $state('');
  plan = new Loader<ResolvedPlan>();
  lrFind = new Loader<LrFindResult>();
  #timer: ReturnType<typeof setTimeout> | null = null;

  /** The value the form shows for a field: the user's edit, else the resolved plan's. */
  value(path: string): unknown {
    const o = getPath(this.overrides, path);
    return o !== undefined ? o : getPath(this.plan.value?.config, path);
  }

  isEdited(path: string): boolean {
    return getPath(this.overrides, path) !== undefined;
  }

  set(path: string, value: unknown): void {
    this.overrides = setPath(this.overrides, path, value);
    this.schedulePlan();
  }

  setStrategy(s: StrategyName): void {
    this.strategy = s;
    const kept: Json = {};
    for (const k of KEPT_ACROSS_PRESETS) if (this.overrides[k] !== undefined) kept[k] = this.overrides[k];
    this.overrides = kept;
    this.lrFind.reset();
    this.schedulePlan(0);
  }

  resetEdits(): void {
    this.overrides = {};
    this.schedulePlan(0);
  }

  /** The arguments train:plan / train:start / train:lrFind take. */
  target() {
    return { snapshotId: this.snapshotId, backbone: this.backbone, strategy: this.strategy, config: this.overrides };
  }

  schedulePlan(delayMs = 300): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.replan(), delayMs);
  }

  async replan(): Promise<void> {
    const t = this.target();
    await this.plan.load(() => call('train:plan', { ...t, snapshotId: t.snapshotId || undefined }));
  }

  async findLr(): Promise<void> {
    await this.lrFind.load(() => call('train:lrFind', { ...this.target(), maxSteps: 60 }));
  }
}
