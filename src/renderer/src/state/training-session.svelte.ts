/**
 * What is training right now, as the Live run screen draws it. One instance lives as long as
 * the app (not the screen), listens to the train:* events and keeps each run's history, so
 * leaving the screen and coming back redraws everything. On start (and after a reload) it
 * asks `train:active` for the history streamed so far.
 *
 * Events arrive up to a few per second per run; they are buffered and applied every 250 ms,
 * replacing `runs` wholesale ($state.raw) so charts see one fresh object per tick.
 */
import { call, onEvent } from '../lib/transport';
import { errorMessage } from '../lib/format';
import type { ActiveRun, StrategyName, TrainProgress } from '../../../shared/contract/training';

/** A run as the live screen sees it: the service's ActiveRun plus what ended it. */
export interface LiveRun extends Omit<ActiveRun, 'status'> {
  /** running | paused | stopping while live; then finished | stopped | failed. */
  status: string;
  message: string | null;
  phase: { phase: string; done: number; total: number } | null;
  best: { epoch: number; val_accuracy: number; val_loss: number } | null;
}

export const LIVE_STATUSES = ['running', 'paused', 'stopping'];

/** Per-batch points kept per run; older ones are thinned (every other one dropped). */
const MAX_HISTORY = 4000;

function fromActive(a: ActiveRun): LiveRun {
  return { ...a, message: null, phase: null, best: null };
}

function blank(runId: string): LiveRun {
  return { runId, name: runId.slice(0, 8), status: 'running', message: null, backend: '', threads: 0, epochs: 0, history: [], epochsDone: [], unfreezes: [], phase: null, best: null };
}

type Pending = (r: LiveRun) => LiveRun;

export class TrainingSession {
  runs = $state.raw<Record<string, LiveRun>>({});
  error = $state.raw<string | null>(null);
  /** The run the Live screen shows when none is named in the URL: the last one started. */
  lastStarted = $state<string | null>(null);

  #pending = new Map<string, Pending[]>();
  #timer: ReturnType<typeof setTimeout> | null = null;
  #unsubscribe: (() => void)[] = [];

  constructor() {
    this.#unsubscribe = [
      onEvent('train:progress', (p) => this.#queue(p.runId, (r) => ({ ...r, epochs: p.epochs || r.epochs, history: appendThinned(r.history, p) }))),
      onEvent('train:epoch', (e) => this.#queue(e.runId, (r) => ({ ...r, epochsDone: [...r.epochsDone.filter((x) => x.epoch !== e.epoch), e] }))),
      onEvent('train:unfrozen', (u) => this.#queue(u.runId, (r) => ({ ...r, unfreezes: [...r.unfreezes, { epoch: u.epoch, groups: u.groups }] }))),
      onEvent('train:phase', (ph) => this.#queue(ph.runId, (r) => ({ ...r, phase: ph.done >= ph.total ? null : { phase: ph.phase, done: ph.done, total: ph.total } }))),
      onEvent('train:status', (s) =>
        this.#queue(s.runId, (r) => ({ ...r, status: s.status, message: s.message ?? r.message, best: s.best ?? r.best, phase: LIVE_STATUSES.includes(s.status) ? r.phase : null })),
      ),
    ];
    void this.refresh();
  }

  /** Merge what the server is training now (its history is complete; ours may have gaps). */
  async refresh(): Promise<void> {
    try {
      const active = await call('train:active', {});
      const next = { ...this.runs };
      for (const a of active) next[a.runId] = { ...fromActive(a), phase: next[a.runId]?.phase ?? null };
      // Runs we thought live but the server no longer trains ended while we were away.
      for (const [id, r] of Object.entries(next)) {
        if (LIVE_STATUSES.includes(r.status) && !active.some((a) => a.runId === id)) next[id] = { ...r, status: 'ended' };
      }
      this.runs = next;
      this.error = null;
    } catch (err) {
      this.error = errorMessage(err);
    }
  }

  get liveIds(): string[] {
    return Object.values(this.runs)
      .filter((r) => LIVE_STATUSES.includes(r.status))
      .map((r) => r.runId);
  }

  /** Start a run; resolves with its id once the server has created it. */
  async start(args: { snapshotId: string; backbone: string; strategy: StrategyName; config: Record<string, unknown>; name?: string; experiment?: string }): Promise<string> {
    const { runId } = await call('train:start', args);
    this.runs = { ...this.runs, [runId]: this.runs[runId] ?? { ...blank(runId), name: args.name || runId.slice(0, 8) } };
    this.lastStarted = runId;
    void this.refresh();
    return runId;
  }

  async control(runId: string, action: 'pause' | 'resume' | 'stop'): Promise<void> {
    const verb = action === 'pause' ? 'train:pause' : action === 'resume' ? 'train:resume' : 'train:stop';
    const { status } = await call(verb, { runId });
    this.#queue(runId, (r) => ({ ...r, status }));
    this.#flush();
  }

  dispose(): void {
    for (const u of this.#unsubscribe) u();
    if (this.#timer) clearTimeout(this.#timer);
  }

  #queue(runId: string, change: Pending): void {
    // Jobs without a run (LR finder, evaluation) report phases with an empty id: not a run.
    if (!runId) return;
    const list = this.#pending.get(runId) ?? [];
    list.push(change);
    this.#pending.set(runId, list);
    this.#timer ??= setTimeout(() => this.#flush(), 250);
  }

  #flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (!this.#pending.size) return;
    const next = { ...this.runs };
    let unknown = false;
    for (const [runId, changes] of this.#pending) {
      if (!next[runId]) unknown = true;
      next[runId] = changes.reduce((r, f) => f(r), next[runId] ?? blank(runId));
    }
    this.#pending.clear();
    this.runs = next;
    // A run started elsewhere (another window, the CLI through this server): fetch its name and history.
    if (unknown) void this.refresh();
  }
}

function appendThinned(history: TrainProgress[], p: TrainProgress): TrainProgress[] {
  const next = [...history, p];
  return next.length > MAX_HISTORY ? next.filter((_, i) => i % 2 === 0 || i === next.length - 1) : next;
}
