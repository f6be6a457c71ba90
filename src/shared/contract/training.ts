/**
 * The training, evaluation, export and prediction verbs, and the live events of a run.
 * The config's shape is the engine's `TrainConfig` (one source of truth, type-only import).
 */
import { z } from 'zod';
import { verb } from './define';
import type { TrainConfig } from '../../main/engine/config';

export type { TrainConfig };

export const STRATEGY_NAMES = ['head', 'progressive', 'discriminative', 'full', 'auto'] as const;
export type StrategyName = (typeof STRATEGY_NAMES)[number];

/** Partial config overrides: validated by the engine (errors name the field and the accepted values). */
const overrides = z.record(z.string(), z.unknown()).default({});

const runTarget = z.object({
  /** Dataset snapshot id (from datasets:import / datasets:list). */
  snapshotId: z.string().min(1),
  /** Backbone id from models:list, or a folder holding a Keras LayersModel model.json. */
  backbone: z.string().min(1).default('mobilenet_v2_0.35_224'),
  strategy: z.enum(STRATEGY_NAMES).default('auto'),
  config: overrides,
});

export interface GroupRow {
  name: string;
  paramCount: number;
  /** Trainable from the start of the run. */
  trainable: boolean;
  /** Epoch after which it unfreezes (progressive plans), or null. */
  unfreezeAfterEpoch: number | null;
  /** Peak learning rate once trainable. */
  lr: number;
}

export interface ResolvedPlan {
  config: TrainConfig;
  groups: GroupRow[];
  /** The schedule's lr multiplier over the run, for the curve preview. */
  schedule: { step: number; epoch: number; lr: number }[];
  stepsPerEpoch: number;
  /** Notes on the choices made automatically (micro-batches, feature cache, ...). */
  notes: string[];
}

export interface LrFindResult {
  points: { lr: number; loss: number }[];
  suggestions: { steepest: number | null; valley: number | null };
  /** Groups the finder trained (the head, or just-unfrozen groups). */
  groups: string[];
}

export interface ClassMetrics {
  name: string;
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

export interface Evaluation {
  runId: string;
  split: string;
  checkpoint: 'best' | 'last';
  accuracy: number;
  topK: { k: number; accuracy: number }[];
  loss: number;
  perClass: ClassMetrics[];
  macro: { precision: number; recall: number; f1: number };
  weighted: { precision: number; recall: number; f1: number };
  classNames: string[];
  /** confusion[true][predicted] counts. */
  confusion: number[][];
  topLosses: { path: string; trueClass: string; predicted: string; confidence: number; loss: number; thumbnail?: string }[];
  tta: 'none' | 'flip';
  seconds: number;
}

export interface ExportResult {
  dir: string;
  files: string[];
  parity: {
    ok: boolean;
    images: number;
    /** Images whose top class differs between the app and the reloaded export. */
    mismatches: number;
    maxAbsDiff: number;
    message: string;
  };
}

export interface Prediction {
  name: string;
  top: string;
  confidence: number;
  probabilities: { label: string; p: number }[];
}

export interface ActiveRun {
  runId: string;
  name: string;
  status: 'running' | 'paused' | 'stopping';
  backend: string;
  threads: number;
  epochs: number;
  /** Everything streamed so far, so a screen that comes back can redraw its curves. */
  history: TrainProgress[];
  epochsDone: EpochEnd[];
  unfreezes: { epoch: number; groups: string[] }[];
}

export interface TrainProgress {
  runId: string;
  epoch: number;
  epochs: number;
  batch: number;
  batches: number;
  /** Global step (batches since the start of the run). */
  step: number;
  loss: number;
  accuracy: number;
  lrs: Record<string, number>;
  imagesPerSec: number;
  etaSeconds: number;
}

/** What every finished epoch reports (the engine adds per-group details). */
export interface EpochSummary {
  /** 1-based. */
  epoch: number;
  train_loss: number;
  train_accuracy: number;
  val_loss: number;
  val_accuracy: number;
  /** Head lr at the end of the epoch. */
  lr: number;
  seconds: number;
}

export interface EpochEnd extends EpochSummary {
  runId: string;
}

export interface TrainingEvents {
  'train:progress': TrainProgress;
  'train:epoch': EpochEnd;
  /** `epoch` is the 1-based epoch in which `groups` start training (they unfroze after epoch - 1). */
  'train:unfrozen': { runId: string; epoch: number; groups: string[] };
  'train:status': { runId: string; status: string; message?: string; best?: { epoch: number; val_accuracy: number; val_loss: number } };
  'train:phase': { runId: string; phase: string; done: number; total: number };
}

const runId = z.object({ runId: z.string().min(1) }).strict();

export const trainingVerbs = {
  'train:plan': verb(runTarget.extend({ snapshotId: z.string().min(1).optional() })).returns<ResolvedPlan>(),
  'train:start': verb(runTarget.extend({ name: z.string().max(200).optional(), experiment: z.string().max(200).optional() })).returns<{ runId: string }>(),
  'train:pause': verb(runId).returns<{ status: string }>(),
  'train:resume': verb(runId).returns<{ status: string }>(),
  'train:stop': verb(runId).returns<{ status: string }>(),
  /** Continue an interrupted or stopped run from its last checkpoint, into the same run id. */
  'train:continue': verb(runId).returns<{ runId: string }>(),
  'train:active': verb(z.object({}).strict()).returns<ActiveRun[]>(),
  'train:lrFind': verb(runTarget.extend({ maxSteps: z.number().int().min(10).max(1000).default(100) })).returns<LrFindResult>(),
  'eval:run': verb(
    z.object({
      runId: z.string().min(1),
      split: z.enum(['val', 'test', 'train']).default('val'),
      checkpoint: z.enum(['best', 'last']).default('best'),
      tta: z.enum(['none', 'flip']).optional(),
    }),
  ).returns<Evaluation>(),
  'eval:get': verb(z.object({ runId: z.string().min(1), split: z.enum(['val', 'test', 'train']).default('val') })).returns<Evaluation | null>(),
  'export:run': verb(z.object({ runId: z.string().min(1), outDir: z.string().optional() })).returns<ExportResult>(),
  'predict:images': verb(
    z.object({
      runId: z.string().min(1).optional(),
      exportDir: z.string().optional(),
      /** Images as base64 (drag and drop in the GUI) or file paths (CLI, desktop). */
      images: z.array(z.object({ name: z.string(), base64: z.string() })).max(64).default([]),
      paths: z.array(z.string()).max(10000).default([]),
    }),
  ).returns<Prediction[]>(),
};
