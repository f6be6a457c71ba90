/**
 * The training, evaluation, export and prediction verbs. Validation and the log happen
 * here on the main thread; the engine runs in a worker (jobs/). A run row exists before its
 * worker starts, so a crash at any point leaves a run the log can mark interrupted.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Api, GroupRow, ResolvedPlan } from '../../shared/contract';
import { AppError } from '../../shared/errors';
import type { AppContext } from './context';
import type { Store } from '../store';
import { BACKEND_PENDING, epochRows, type RunManager } from './run-manager';
import { locateBackbone } from '../engine/backbones/locate';
import { resolveConfig } from '../engine/strategies';
import type { TrainConfig } from '../engine/config';
import { planGroups, describePlan } from '../engine/param-groups';
import { previewSchedule } from '../engine/schedules';
import { functionalConfig } from '../engine/net/topology';
import { parseTopology } from '../engine/net/topology';
import { splitGroups } from '../engine/net/groups';
import { loadSnapshot, snapshotPath } from '../dataset/snapshot';
import { startJob } from './jobs/worker-host';
import type { CheckpointMeta } from '../engine/trainer';
import type { BackboneRef, DataRef, TrainJobPayload } from './jobs/train-job-types';

type TrainingVerbs = 'train:plan' | 'train:start' | 'train:pause' | 'train:resume' | 'train:stop' | 'train:continue' | 'train:active' | 'train:lrFind' | 'eval:run' | 'eval:get' | 'export:run' | 'predict:images';

export function createTrainingServices(ctx: AppContext, store: Store, runs: RunManager): Pick<Api, TrainingVerbs> {
  async function backboneRef(id: string): Promise<BackboneRef & { notes: string[] }> {
    const b = await locateBackbone(id, { cacheDir: ctx.paths.modelsCache, mirrors: ctx.mirrors });
    return { id: b.id, modelJson: b.modelJson, preprocessing: b.preprocessing, notes: b.notes };
  }
  /** Where a job finds the snapshot; checks it exists without reading it. */
  function dataRef(snapshotId: string): DataRef {
    if (!fs.existsSync(snapshotPath(ctx.paths.datasets, snapshotId))) loadSnapshot(ctx.paths.datasets, snapshotId); // throws the not-found advice
    return { datasetsDir: ctx.paths.datasets, snapshotId, decodeCacheDir: ctx.paths.decodeCache };
  }
  /** Training images in a snapshot, from the log's summary (the snapshot file only as a fallback). */
  function trainCount(snapshotId: string): number {
    const counts = (store.getSnapshot(snapshotId)?.summary as { counts?: Record<string, Record<string, number>> } | undefined)?.counts ?? loadSnapshot(ctx.paths.datasets, snapshotId).report.counts;
    return Object.values(counts.train ?? {}).reduce((a, b) => a + b, 0);
  }
  function runDir(runId: string): string {
    return path.join(ctx.paths.runs, runId);
  }
  function backboneOf(runId: string): Promise<BackboneRef> {
    return backboneRef(store.getRunRecord(runId).backbone);
  }
  function snapshotOf(runId: string): DataRef {
    const r = store.getRunRecord(runId);
    if (!r.snapshotId) throw new AppError('no_snapshot', `Run ${runId} has no dataset snapshot recorded.`);
    return dataRef(r.snapshotId);
  }
  function checkpointFor(runId: string, which: 'best' | 'last'): string {
    const dir = path.join(runDir(runId), 'checkpoints', which);
    if (fs.existsSync(dir)) return dir;
    const other = path.join(runDir(runId), 'checkpoints', which === 'best' ? 'last' : 'best');
    if (fs.existsSync(other)) return other;
    throw new AppError('no_checkpoint', `Run ${runId} has no checkpoint yet (it has not finished an epoch). Wait for its first epoch, or continue it.`);
  }

  /** Groups table, schedule curve and notes for a strategy + overrides on a backbone. */
  async function plan(args: { snapshotId?: string; backbone: string; strategy: string; config: Record<string, unknown> }): Promise<ResolvedPlan & { backbone: BackboneRef }> {
    const config = resolveConfig(args.strategy, args.config);
    const backbone = await backboneRef(args.backbone);
    // model.json alone: the topology and the weight shapes, without reading the weight files.
    const modelJson = JSON.parse(fs.readFileSync(backbone.modelJson, 'utf8')) as { modelTopology: Record<string, unknown>; weightsManifest: { weights: { name: string; shape: number[] }[] }[] };
    const { layers, output } = parseTopology(functionalConfig(modelJson.modelTopology, backbone.modelJson));
    const groups = splitGroups(layers, output);
    const names = groups.map((g) => g.name);
    const paramsOf = new Map<string, number>();
    for (const w of modelJson.weightsManifest.flatMap((g) => g.weights)) {
      const layer = w.name.split('/')[0];
      paramsOf.set(layer, (paramsOf.get(layer) ?? 0) + w.shape.reduce((a, b) => a * b, 1));
    }
    const gp = planGroups(config, names);
    const described = describePlan(gp);
    const rows: GroupRow[] = described.map((d) => ({
      name: d.group,
      paramCount: d.group === 'head' ? 0 : (groups.find((g) => g.name === d.group)?.layers ?? []).reduce((a, l) => a + (paramsOf.get(l) ?? 0), 0),
      trainable: d.fromEpoch === 1,
      unfreezeAfterEpoch: d.fromEpoch && d.fromEpoch > 1 ? d.fromEpoch - 1 : null,
      lr: d.lr,
    }));
    const trainImages = args.snapshotId ? trainCount(args.snapshotId) : 0;
    const stepsPerEpoch = Math.max(1, Math.ceil((trainImages || config.batchSize * 10) / config.batchSize));
    const notes = [...backbone.notes];
    if (!trainImages) notes.push('No dataset chosen: the schedule preview assumes 10 batches per epoch.');
    if (gp.earliestTrainable > 0) notes.push(`Groups before ${names[gp.earliestTrainable] ?? 'the head'} stay frozen for the whole run: their output is computed once and cached.`);
    const schedule = previewSchedule(config, stepsPerEpoch * config.epochs, 200).map((p) => ({ step: p.step, epoch: p.epoch, lr: p.lr }));
    return { config, groups: rows, schedule, stepsPerEpoch, notes, backbone };
  }

  async function launch(runId: string, name: string, config: TrainConfig, backbone: BackboneRef, data: DataRef, resume: boolean): Promise<void> {
    const payload: TrainJobPayload = {
      runId,
      runDir: runDir(runId),
      featureCacheDir: path.join(ctx.paths.home, 'cache', 'features'),
      backbone: { id: backbone.id, modelJson: backbone.modelJson, preprocessing: backbone.preprocessing },
      data: { datasetsDir: data.datasetsDir, snapshotId: data.snapshotId, decodeCacheDir: data.decodeCacheDir },
      config,
      resume,
    };
    fs.mkdirSync(payload.runDir, { recursive: true });
    runs.launch(runId, name, payload);
  }

  function job<R>(kind: Parameters<typeof startJob>[0], payload: unknown): Promise<R> {
    return startJob<R>(kind, payload, (name, data) => {
      if (name === 'phase') ctx.events.emit('train:phase', { runId: '', ...(data as { phase: string; done: number; total: number }) });
    }).done;
  }

  return {
    'train:plan': async (args) => {
      const { backbone: _b, ...rest } = await plan(args);
      return rest;
    },
    'train:start': async (args) => {
      const data = dataRef(args.snapshotId);
      const p = await plan(args);
      // The worker reports the backend it picks; tfjs is not started here just to name it.
      const run = store.createRun({
        name: args.name,
        experiment: args.experiment,
        config: { ...p.config, backbone: args.backbone },
        snapshotId: args.snapshotId,
        backbone: args.backbone,
        backend: BACKEND_PENDING,
        seed: p.config.seed,
        strategy: args.strategy,
      });
      await launch(run.id, run.name, p.config, p.backbone, data, false);
      return { runId: run.id };
    },
    'train:pause': async ({ runId }) => runs.control(runId, 'pause'),
    'train:resume': async ({ runId }) => runs.control(runId, 'resume'),
    'train:stop': async ({ runId }) => runs.control(runId, 'stop'),
    'train:continue': async ({ runId }) => {
      const rec = store.getRunRecord(runId);
      if (runs.isActive(rec.id)) throw new AppError('already_running', `Run ${rec.id} is already training.`);
      if (rec.status === 'finished') throw new AppError('bad_state', `Run ${rec.id} already finished; start a new run to train more.`);
      const detail = store.getRun(rec.id);
      const config = resolveConfig(rec.strategy, detail.config as Record<string, unknown>);
      // The checkpoint on disk is the truth: the log may have committed an epoch whose
      // checkpoint record was cut off by the crash, or the reverse.
      const lastDir = path.join(runDir(rec.id), 'checkpoints', 'last');
      // Imported here: engine/checkpoint loads tfjs (~0.7 s), which no other verb of this process needs.
      const { checkpointExists, loadCheckpoint } = await import('../engine/checkpoint');
      const hasLast = checkpointExists(lastDir);
      const meta = hasLast ? loadCheckpoint<CheckpointMeta>(lastDir).meta : null;
      const completed = meta?.position.epoch ?? 0;
      const resumed = store.resumeRun(rec.id, { discardAfterEpoch: completed });
      // A kill between the checkpoint's write (in the worker) and the epoch's commit (here)
      // leaves epochs the checkpoint covers but the log lacks: restore them from its history.
      if (meta) {
        const logged = new Set(store.getRun(rec.id).epochs.val_accuracy?.map((p) => p.epoch) ?? []);
        const p = meta.position;
        const batches = p.batch === 0 && p.epoch > 0 ? Math.max(1, Math.round(p.globalStep / p.epoch)) : 1;
        const trainableGroups = (e: (typeof meta.history)[number]) => ({ trainable_groups: e.trainable.length });
        const missing = meta.history.filter((e) => e.epoch <= completed && !logged.has(e.epoch));
        if (missing.length) store.logMetrics(rec.id, missing.flatMap((e) => epochRows(e, e.epoch * batches, Date.now(), trainableGroups(e))));
      }
      await launch(resumed.id, resumed.name, config, await backboneOf(rec.id), snapshotOf(rec.id), hasLast);
      return { runId: resumed.id };
    },
    'train:active': async () => runs.active(),
    'train:lrFind': async (args) => {
      const data = dataRef(args.snapshotId);
      const p = await plan(args);
      return job('lrFind', { backbone: { id: p.backbone.id, modelJson: p.backbone.modelJson, preprocessing: p.backbone.preprocessing }, data, config: p.config, steps: args.maxSteps });
    },
    'eval:run': async ({ runId, split, checkpoint, tta }) => {
      const rec = store.getRunRecord(runId);
      const config = store.getRun(rec.id).config as { tta?: 'none' | 'flip' };
      const result = await job<Record<string, unknown>>('evaluate', {
        backbone: await backboneOf(rec.id),
        checkpointDir: checkpointFor(rec.id, checkpoint),
        data: snapshotOf(rec.id),
        split,
        tta: tta ?? config.tta ?? 'none',
      });
      const evaluation = { ...result, runId: rec.id, split, checkpoint } as never;
      store.saveEvaluation(rec.id, split, evaluation);
      return evaluation;
    },
    'eval:get': async ({ runId, split }) => store.getEvaluation(store.resolveRunId(runId), split),
    'export:run': async ({ runId, outDir }) => {
      const rec = store.getRunRecord(runId);
      const dir = path.resolve(outDir ?? path.join(runDir(rec.id), 'export'));
      const result = await job<{ dir: string; files: string[]; parity: { ok: boolean; message: string } }>('export', {
        backbone: await backboneOf(rec.id),
        checkpointDir: checkpointFor(rec.id, 'best'),
        data: snapshotOf(rec.id),
        outDir: dir,
        meta: { runId: rec.id, runName: rec.name, backbone: rec.backbone, snapshotId: rec.snapshotId, appVersion: ctx.appVersion, exportedAt: new Date().toISOString() },
      });
      const size = fs.readdirSync(dir).reduce((a, f) => a + fs.statSync(path.join(dir, f)).size, 0);
      store.addArtifact(rec.id, { kind: 'export', path: dir, size, meta: { parity: result.parity } });
      if (!result.parity.ok) throw new AppError('parity_failed', `${result.parity.message} The export in ${dir} must not be trusted.`);
      return result as never;
    },
    'predict:images': async ({ runId, exportDir, images, paths }) => {
      const all = [...images.map((i) => ({ name: i.name, base64: i.base64 })), ...paths.map((p) => ({ name: path.basename(p), path: path.resolve(p) }))];
      if (exportDir) return job('predict', { exportDir: path.resolve(exportDir), images: all });
      if (!runId) throw new AppError('bad_arguments', 'Predict needs runId (uses its best checkpoint) or exportDir.');
      const rec = store.getRunRecord(runId);
      return job('predict', { classifier: { backbone: await backboneOf(rec.id), checkpointDir: checkpointFor(rec.id, 'best') }, images: all });
    },
  };
}
