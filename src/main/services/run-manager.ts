/**
 * Owns the runs that are training right now: starts each in an engine worker, writes what
 * it reports to the log (one transaction per epoch), forwards events to the UI, and
 * relays pause / resume / stop. The log is written only here, on the main thread.
 */
import type { ActiveRun, EpochEnd, EpochSummary, TrainProgress } from '../../shared/contract';
import { AppError } from '../../shared/errors';
import type { AppContext } from './context';
import type { MetricRow, Store } from '../store';
import { dropSpareWorker, prestartWorker, startJob, type JobHandle } from './jobs/worker-host';
import type { TrainJobPayload, TrainJobResult } from './jobs/train-job-types';

/** What the worker's events update. */
interface LiveState {
  info: ActiveRun;
  /** Batch-level metrics waiting for the epoch's transaction. */
  pending: MetricRow[];
  lastEmit: number;
}

interface LiveRun extends LiveState {
  job: JobHandle<TrainJobResult>;
  finished: Promise<TrainJobResult>;
}

const PROGRESS_EMIT_MS = 200;

/** The run's backend column until its worker reports the backend it chose. */
export const BACKEND_PENDING = 'pending';

export function describeBackend(name: string, threads: number): string {
  return `${name}${threads ? ` (${threads} threads)` : ''}`;
}

/** The metric rows one finished epoch writes to the log (live, or restored from a checkpoint). */
export function epochRows(e: EpochSummary, step: number, time: number, extra: Record<string, number> = {}): MetricRow[] {
  const keys: (keyof EpochSummary)[] = ['train_loss', 'train_accuracy', 'val_loss', 'val_accuracy', 'lr', 'seconds'];
  const rows: MetricRow[] = keys.map((k) => ({ key: k === 'seconds' ? 'epoch_seconds' : k, step, epoch: e.epoch, value: e[k], time }));
  for (const [k, v] of Object.entries(extra)) rows.push({ key: k, step, epoch: e.epoch, value: v, time });
  return rows;
}

export class RunManager {
  private live = new Map<string, LiveRun>();

  constructor(
    private ctx: AppContext,
    private store: Store,
  ) {}

  active(): ActiveRun[] {
    return [...this.live.values()].map((l) => l.info);
  }

  isActive(runId: string): boolean {
    return this.live.has(runId);
  }

  /** Start (or continue) a run in a worker. The run row must exist already. */
  launch(runId: string, name: string, payload: TrainJobPayload): void {
    if (this.live.has(runId)) throw new AppError('already_running', `Run ${runId} is already training.`);
    const info: ActiveRun = {
      runId,
      name,
      status: 'running',
      backend: '',
      threads: 0,
      epochs: payload.config.epochs,
      history: [],
      epochsDone: [],
      unfreezes: [],
    };
    const state: LiveState = { info, pending: [], lastEmit: 0 };
    const job = startJob<TrainJobResult>('train', payload, (event, data) => this.onEvent(state, event, data));
    const finished = job.done.then(
      (result) => {
        this.flush(state);
        this.store.setStatus(runId, result.status);
        this.ctx.events.emit('train:status', { runId, status: result.status, best: result.best ?? undefined });
        this.live.delete(runId);
        return result;
      },
      (err: AppError) => {
        this.flush(state);
        const status = err.code === 'cancelled' ? 'stopped' : 'failed';
        this.store.setStatus(runId, status, { error: status === 'failed' ? err.message : undefined });
        this.ctx.events.emit('train:status', { runId, status, message: err.message });
        this.live.delete(runId);
        throw err;
      },
    );
    // Nobody may be awaiting (the GUI follows events); keep the rejection from being unhandled.
    finished.catch(() => {});
    this.live.set(runId, Object.assign(state, { job, finished }));
    this.ctx.events.emit('train:status', { runId, status: 'running' });
  }

  /** Resolves when the run ends (CLI), with the job's result. */
  wait(runId: string): Promise<TrainJobResult> {
    const l = this.live.get(runId);
    if (!l) throw new AppError('not_running', `Run ${runId} is not training.`);
    return l.finished;
  }

  control(runId: string, action: 'pause' | 'resume' | 'stop'): { status: string } {
    const l = this.live.get(runId);
    if (!l) throw new AppError('not_running', `Run ${runId} is not training in this app (see the runs list for its status).`);
    l.job.control({ type: action });
    l.info = { ...l.info, status: action === 'pause' ? 'paused' : action === 'resume' ? 'running' : 'stopping' };
    this.ctx.events.emit('train:status', { runId, status: l.info.status });
    return { status: l.info.status };
  }

  /** Start the next run's engine worker now (tfjs loading while the caller prepares the run). */
  prewarm(): void {
    prestartWorker();
  }

  /** Stop everything (app quit): runs end as 'stopped' with their last checkpoint kept. */
  async stopAll(): Promise<void> {
    const all = [...this.live.values()];
    for (const l of all) l.job.control({ type: 'stop' });
    await Promise.allSettled([...all.map((l) => l.finished), dropSpareWorker()]);
  }

  /**
   * How the run executes here (backend, threads, micro-batch, feature cache) as `runtime.*`
   * params. Params are written once: a run continued on another machine keeps the values of
   * its first session (the new ones are reported by its events), so a conflict is not an error.
   */
  private logRuntime(runId: string, values: Record<string, unknown>): void {
    for (const [k, v] of Object.entries(values)) {
      try {
        this.store.logParams(runId, { [`runtime.${k}`]: v });
      } catch (err) {
        // Already recorded with another value by an earlier session of this run: keep that.
        if (!(err instanceof AppError && err.code === 'param_conflict')) throw err;
      }
    }
  }

  private flush(l: LiveState): void {
    if (!l.pending.length) return;
    this.store.logMetrics(l.info.runId, l.pending);
    l.pending = [];
  }

  private onEvent(l: LiveState, event: string, data: unknown): void {
    const runId = l.info.runId;
    const now = Date.now();
    switch (event) {
      case 'backend': {
        const d = data as { name: string; threads: number };
        l.info = { ...l.info, backend: d.name, threads: d.threads };
        this.logRuntime(runId, { backend: d.name, threads: d.threads });
        this.store.fillBackend(runId, describeBackend(d.name, d.threads), BACKEND_PENDING);
        break;
      }
      case 'setup': {
        const d = data as { microBatch: number; featureCache: { enabled: boolean; group: string | null; views: number; where: string | null } };
        const c = d.featureCache;
        this.logRuntime(runId, { micro_batch: d.microBatch, feature_cache: c.enabled ? `${c.group} (${c.views} view${c.views === 1 ? '' : 's'}, ${c.where})` : 'off' });
        break;
      }
      case 'progress': {
        const p = { ...(data as Omit<TrainProgress, 'runId'>), runId };
        l.pending.push({ key: 'batch_loss', step: p.step, epoch: p.epoch, value: p.loss, time: now });
        l.pending.push({ key: 'batch_accuracy', step: p.step, epoch: p.epoch, value: p.accuracy, time: now });
        for (const [group, lr] of Object.entries(p.lrs)) l.pending.push({ key: `lr/${group}`, step: p.step, epoch: p.epoch, value: lr, time: now });
        l.info.history.push(p);
        if (l.info.history.length > 5000) l.info.history.splice(0, l.info.history.length - 5000);
        if (now - l.lastEmit >= PROGRESS_EMIT_MS || p.batch === p.batches) {
          l.lastEmit = now;
          this.ctx.events.emit('train:progress', p);
        }
        break;
      }
      case 'epoch': {
        const e = { ...(data as Omit<EpochEnd, 'runId'> & { step: number; extra?: Record<string, number> }), runId };
        l.pending.push(...epochRows(e, e.step, now, e.extra));
        // One transaction per epoch: the UI can read while the run writes, a crash loses at most this epoch.
        this.flush(l);
        const { step: _s, extra: _x, ...epochEnd } = e;
        l.info.epochsDone.push(epochEnd);
        this.ctx.events.emit('train:epoch', epochEnd);
        break;
      }
      case 'checkpoint': {
        const c = data as { path: string; epoch: number; kind: 'last' | 'best'; size: number };
        this.flush(l);
        if (c.kind === 'last') this.store.setCheckpoint(runId, c.path, c.epoch);
        else this.store.addArtifact(runId, { kind: 'checkpoint', path: c.path, size: c.size, meta: { epoch: c.epoch, best: true } });
        break;
      }
      case 'unfrozen': {
        const u = data as { epoch: number; groups: string[] };
        l.info.unfreezes.push(u);
        this.ctx.events.emit('train:unfrozen', { runId, ...u });
        break;
      }
      case 'phase': {
        const ph = data as { phase: string; done: number; total: number };
        this.ctx.events.emit('train:phase', { runId, ...ph });
        break;
      }
    }
  }
}
