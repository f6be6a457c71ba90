/**
 * The `runs:*` and `experiments:*` verbs: the experiment log as the UI, the HTTP bridge and
 * the CLI see it. Times are milliseconds since the Unix epoch. Metric values are numbers and
 * may be NaN or ±Infinity (a diverged run); over JSON transports NaN arrives as null.
 */
import { z } from 'zod';
import { verb } from './define';

export const RUN_STATUSES = ['queued', 'running', 'finished', 'failed', 'stopped', 'interrupted'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

export const ARTIFACT_KINDS = ['checkpoint', 'export', 'plot', 'eval'] as const;
export type ArtifactKind = (typeof ARTIFACT_KINDS)[number];

/** Which way is better for a metric: accuracies go up, losses go down, others (lr) have no best. */
export type MetricDirection = 'max' | 'min' | null;

/** What every view of a run carries: identity, how it was trained, when. */
export interface RunCore {
  id: string;
  name: string;
  experimentId: string;
  experiment: string;
  status: RunStatus;
  snapshotId: string | null;
  backbone: string;
  backend: string;
  seed: number;
  strategy: string;
  startedAt: number;
  endedAt: number | null;
}

/** One run as stored: what createRun returns and what the training service reads back. */
export interface RunRecord extends RunCore {
  appVersion: string;
  /** Last time the owning process wrote metrics: how fresh a running run is. */
  heartbeatAt: number | null;
  notes: string;
  /** Why the run failed or was interrupted. */
  error: string | null;
  /** Last checkpoint written, for resume, and the epoch it ends. */
  lastCheckpoint: string | null;
  lastCheckpointEpoch: number | null;
}

/** Final and best value of one metric key of one run. */
export interface MetricSummary {
  key: string;
  direction: MetricDirection;
  /** Value at the highest step logged (may be NaN). */
  final: number | null;
  finalStep: number | null;
  finalEpoch: number | null;
  /** Max for accuracy-like keys, min for loss-like keys, ignoring NaN; null when the key has no direction. */
  best: number | null;
  bestStep: number | null;
  bestEpoch: number | null;
  count: number;
}

/** A row of a run list: the record plus tags and per-key final/best metrics. */
export interface RunSummary extends RunRecord {
  tags: string[];
  /** Highest epoch with any metric, or null before the first one. */
  lastEpoch: number | null;
  metrics: Record<string, MetricSummary>;
}

export interface Artifact {
  id: number;
  kind: ArtifactKind;
  path: string;
  size: number;
  meta: Record<string, unknown>;
  createdAt: number;
}

export interface SnapshotRecord {
  id: string;
  name: string;
  root: string;
  createdAt: number;
  summary: Record<string, unknown>;
}

/** One logged metric value. */
export interface MetricPoint {
  step: number;
  epoch: number;
  value: number;
  time: number;
}

export interface RunDetail extends RunSummary {
  /** The full resolved training configuration, as the run was started with it. */
  config: Record<string, unknown>;
  /** The config flattened to dotted keys (`optimizer.lr`), written once. */
  params: Record<string, string>;
  artifacts: Artifact[];
  /** Per key, one point per epoch: the last step logged in that epoch. */
  epochs: Record<string, MetricPoint[]>;
  evaluations: { split: string; createdAt: number }[];
  snapshot: SnapshotRecord | null;
}

export interface RunMetrics {
  runId: string;
  keys: string[];
  /** Every logged point per key, by step. */
  series: Record<string, MetricPoint[]>;
}

export interface ParamComparison {
  key: string;
  /** One per run, in the order of `Comparison.runs`; null when the run has no such param. */
  values: (string | null)[];
  differs: boolean;
}

export interface MetricComparison {
  key: string;
  direction: MetricDirection;
  final: (number | null)[];
  best: (number | null)[];
  bestEpoch: (number | null)[];
  /** Index into `runs` of the best run for this key, or null when there is no direction. */
  bestRun: number | null;
}

export interface CurveComparison {
  key: string;
  /** The union of the epochs logged by any run, ascending. */
  epochs: number[];
  /** values[run][i] is the run's value at epochs[i] (last step of that epoch), or null. */
  values: (number | null)[][];
}

export interface Comparison {
  runs: RunSummary[];
  /** Only the params that differ unless `all` was asked for. */
  params: ParamComparison[];
  /** How many params are equal in all runs (hidden unless `all`). */
  sameParams: number;
  metrics: MetricComparison[];
  curves: CurveComparison[];
  /** e.g. runs trained on different dataset snapshots. */
  warnings: string[];
}

export interface ExperimentInfo {
  id: string;
  name: string;
  createdAt: number;
  runCount: number;
  lastRunAt: number | null;
}

export interface RunsExport {
  format: 'csv' | 'json';
  table: 'metrics' | 'runs';
  /** The file contents. */
  text: string;
  runs: number;
  rows: number;
}

export const runFilterSchema = z
  .object({
    /** Experiment name or id. */
    experiment: z.string().min(1).optional(),
    tag: z.string().min(1).optional(),
    status: z.enum(RUN_STATUSES).optional(),
    /** `started` (default), `name`, `status`, or a metric key (sorted by its best value). */
    sort: z.string().min(1).optional(),
    /** Default: newest first; for a metric, its better end first. */
    order: z.enum(['asc', 'desc']).optional(),
    limit: z.number().int().min(1).max(100_000).default(1000),
    offset: z.number().int().min(0).default(0),
  })
  .strict();
export type RunFilter = z.input<typeof runFilterSchema>;

/** A run id, a unique prefix of one, or a unique run name. */
const runRef = z.string().min(1);

export const runsVerbs = {
  'runs:list': verb(runFilterSchema).returns<RunSummary[]>(),
  'runs:get': verb(z.object({ id: runRef }).strict()).returns<RunDetail>(),
  'runs:metrics': verb(
    z
      .object({
        id: runRef,
        keys: z.array(z.string().min(1)).optional(),
        /** Only points with a step greater than this (live charts poll with the last step seen). */
        afterStep: z.number().int().optional(),
      })
      .strict(),
  ).returns<RunMetrics>(),
  'runs:compare': verb(
    z.object({ ids: z.array(runRef).min(2).max(50), all: z.boolean().default(false) }).strict(),
  ).returns<Comparison>(),
  'runs:tag': verb(
    z
      .object({ id: runRef, tag: z.string().trim().min(1).max(64), remove: z.boolean().default(false) })
      .strict(),
  ).returns<{ id: string; tags: string[] }>(),
  'runs:note': verb(z.object({ id: runRef, text: z.string().max(20_000) }).strict()).returns<{
    id: string;
    notes: string;
  }>(),
  'runs:delete': verb(
    z
      .object({
        id: runRef,
        /** Keep the run's folder (checkpoints, plots) on disk; only the log rows go. */
        keepFiles: z.boolean().default(false),
      })
      .strict(),
  ).returns<{ id: string; removedFolder: string | null }>(),
  'runs:export': verb(
    z
      .object({
        ids: z.array(runRef).min(1),
        format: z.enum(['csv', 'json']),
        /** `metrics`: one row per logged value (long format); `runs`: one row per run. */
        table: z.enum(['metrics', 'runs']).default('metrics'),
      })
      .strict(),
  ).returns<RunsExport>(),
  'experiments:list': verb(z.object({}).strict()).returns<ExperimentInfo[]>(),
};

export type RunsChange = 'created' | 'status' | 'tags' | 'notes' | 'deleted' | 'artifact' | 'evaluation';

export interface RunsEvents {
  /** Something about these runs changed: lists and open detail views refetch. */
  'runs:changed': { ids: string[]; change: RunsChange };
}
