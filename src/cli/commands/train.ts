/**
 * `finetune train` and `finetune lr-find`: import the folder (a snapshot), then train with a
 * strategy preset plus overrides, streaming progress; the run lands in the log.
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import type { Booted } from '../../main/boot';
import type { EpochEnd, TrainProgress } from '../../shared/contract';
import { AppError } from '../../shared/errors';
import { progressLine } from '../progress';
import { trace } from '../../main/services/trace';

const TRAIN_OPTIONS = {
  data: { type: 'string' },
  snapshot: { type: 'string' },
  model: { type: 'string', default: 'mobilenet_v2_0.35_224' },
  strategy: { type: 'string', default: 'auto' },
  config: { type: 'string' },
  epochs: { type: 'string' },
  'batch-size': { type: 'string' },
  seed: { type: 'string' },
  val: { type: 'string' },
  name: { type: 'string' },
  experiment: { type: 'string' },
  json: { type: 'boolean' },
} as const;

function intOption(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new AppError('bad_arguments', `--${name} must be a whole number, got "${v}".`);
  return n;
}

/** Build the config overrides from --config FILE.json and the shorthand flags (flags win). */
export function overridesFrom(values: { config?: string; epochs?: string; seed?: string; 'batch-size'?: string }): Record<string, unknown> {
  let overrides: Record<string, unknown> = {};
  if (values.config) {
    if (!fs.existsSync(values.config)) throw new AppError('bad_arguments', `--config ${values.config}: no such file.`);
    try {
      overrides = JSON.parse(fs.readFileSync(values.config, 'utf8'));
    } catch (err) {
      throw new AppError('bad_arguments', `--config ${values.config} is not valid JSON: ${(err as Error).message}`);
    }
  }
  const epochs = intOption('epochs', values.epochs);
  const seed = intOption('seed', values.seed);
  const batchSize = intOption('batch-size', values['batch-size']);
  if (epochs !== undefined) overrides.epochs = epochs;
  if (seed !== undefined) overrides.seed = seed;
  if (batchSize !== undefined) overrides.batchSize = batchSize;
  return overrides;
}

/** Import --data (or take --snapshot) and return the snapshot id. */
async function snapshotFor(values: { data?: string; snapshot?: string; val?: string; seed?: string; json?: boolean }, app: Booted): Promise<string> {
  if (values.snapshot) return values.snapshot;
  if (!values.data) throw new AppError('bad_arguments', 'Give the images with --data DIR (a folder of class folders, or train/val/test folders), or --snapshot ID.');
  const r = await app.call('datasets:import', {
    path: values.data,
    val: values.val !== undefined ? Number(values.val) : undefined,
    seed: intOption('seed', values.seed),
  });
  const log = values.json ? console.error : console.log;
  log(`Dataset snapshot ${r.snapshotId}: ${r.classes.length} classes${r.skipped.length ? `, ${r.skipped.length} file(s) skipped` : ''}`);
  for (const s of r.skipped.slice(0, 5)) log(`  skipped ${s.path}: ${s.reason}`);
  return r.snapshotId;
}

export async function trainCommand(args: string[], app: Booted): Promise<number> {
  const { values } = parseArgs({ args, options: TRAIN_OPTIONS });
  const started = Date.now();
  // The engine worker starts tfjs while the folder is imported.
  app.runs.prewarm();
  const snapshotId = await snapshotFor(values, app);
  trace('dataset imported');
  const overrides = overridesFrom(values);
  const { runId } = await app.call('train:start', {
    snapshotId,
    backbone: values.model!,
    strategy: values.strategy as never,
    config: overrides,
    name: values.name,
    experiment: values.experiment,
  });
  trace('run launched');
  const out = values.json ? console.error : console.log;
  const tty = process.stderr.isTTY && !values.json;
  const epochs: EpochEnd[] = [];
  const unsubscribe = app.ctx.events.subscribe(({ event, payload }) => {
    if (event === 'train:progress' && (payload as TrainProgress).runId === runId) {
      if (tty) process.stderr.write(`\r${progressLine(payload as TrainProgress)}`);
    } else if (event === 'train:epoch' && (payload as EpochEnd).runId === runId) {
      const e = payload as EpochEnd;
      epochs.push(e);
      if (tty) process.stderr.write('\r\x1b[2K');
      out(
        `epoch ${e.epoch}: train loss ${e.train_loss.toFixed(4)} acc ${e.train_accuracy.toFixed(3)} | val loss ${e.val_loss.toFixed(4)} acc ${e.val_accuracy.toFixed(3)} | lr ${e.lr.toExponential(2)} | ${e.seconds.toFixed(1)} s`,
      );
    } else if (event === 'train:unfrozen' && (payload as { runId: string }).runId === runId) {
      const u = payload as { epoch: number; groups: string[] };
      out(`epoch ${u.epoch}: training ${u.groups.join(", ")} from now on`);
    } else if (event === 'train:phase' && (payload as { runId: string }).runId === runId && tty) {
      const ph = payload as { phase: string; done: number; total: number };
      process.stderr.write(`\r\x1b[2K${ph.phase} ${ph.done}/${ph.total}`);
    }
  });
  const stop = () => {
    out('\nStopping after the current batch (Ctrl+C again to abort)...');
    app.runs.control(runId, 'stop');
    process.once('SIGINT', () => process.exit(130));
  };
  process.once('SIGINT', stop);
  try {
    const result = await app.runs.wait(runId);
    const summary = {
      runId,
      status: result.status,
      backend: result.backend,
      threads: result.threads,
      microBatch: result.microBatch,
      featureCache: result.featureCache,
      bestEpoch: result.best?.epoch ?? null,
      best: result.best ? { val_accuracy: result.best.val_accuracy, val_loss: result.best.val_loss } : null,
      epochs: result.epochs,
      seconds: (Date.now() - started) / 1000,
    };
    if (values.json) console.log(JSON.stringify(summary));
    else {
      out(`\nRun ${runId} ${result.status} on ${result.backend} in ${summary.seconds.toFixed(1)} s.`);
      if (result.best) out(`Best epoch ${result.best.epoch}: val accuracy ${result.best.val_accuracy.toFixed(4)}, val loss ${result.best.val_loss.toFixed(4)}`);
    }
    return result.status === 'finished' || result.status === 'stopped' ? 0 : 1;
  } finally {
    process.removeListener('SIGINT', stop);
    unsubscribe();
  }
}

export async function lrFindCommand(args: string[], app: Booted): Promise<number> {
  const { values } = parseArgs({ args, options: { ...TRAIN_OPTIONS, steps: { type: 'string' } } });
  const snapshotId = await snapshotFor(values, app);
  const r = await app.call('train:lrFind', {
    snapshotId,
    backbone: values.model!,
    strategy: values.strategy as never,
    config: overridesFrom(values),
    maxSteps: intOption('steps', values.steps) ?? 100,
  });
  if (values.json) {
    console.log(JSON.stringify(r));
    return 0;
  }
  for (const p of r.points.filter((_, i) => i % Math.max(1, Math.floor(r.points.length / 20)) === 0)) {
    console.log(`lr ${p.lr.toExponential(2)}  loss ${p.loss.toFixed(4)}`);
  }
  console.log(`Suggested: steepest ${r.suggestions.steepest?.toExponential(2) ?? '-'}, valley ${r.suggestions.valley?.toExponential(2) ?? '-'} (groups: ${r.groups.join(', ')})`);
  return 0;
}
