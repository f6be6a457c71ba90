/** Payloads and results of the engine jobs (plain JSON: they cross the worker boundary). */
import type { Preprocessing } from '../../../shared/preprocessing';
import type { EpochSummary } from '../../../shared/contract';
import type { TrainConfig } from '../../engine/config';

export interface BackboneRef {
  id: string;
  modelJson: string;
  preprocessing: Preprocessing;
}

export interface DataRef {
  datasetsDir: string;
  snapshotId: string;
  decodeCacheDir: string;
}

export interface TrainJobPayload {
  runId: string;
  /** The run's folder: checkpoints/{best,last}. */
  runDir: string;
  featureCacheDir: string;
  backbone: BackboneRef;
  data: DataRef;
  config: TrainConfig;
  /** Continue from runDir/checkpoints/last. */
  resume: boolean;
}

export interface TrainJobResult {
  status: 'finished' | 'stopped';
  /** 'completed' | 'early-stopped' | 'stopped' as the engine saw it. */
  engineStatus: string;
  best: { epoch: number; val_accuracy: number; val_loss: number } | null;
  epochs: EpochSummary[];
  backend: string;
  threads: number;
  seconds: number;
  microBatch: number;
  featureCache: unknown;
}

export interface ClassifierJobBase {
  backbone: BackboneRef;
  checkpointDir: string;
}

export interface EvalJobPayload extends ClassifierJobBase {
  data: DataRef;
  split: 'train' | 'val' | 'test';
  tta: 'none' | 'flip';
}

export interface ExportJobPayload extends ClassifierJobBase {
  data: DataRef;
  outDir: string;
  meta: Record<string, unknown>;
}

export interface PredictJobPayload {
  /** Either a run's checkpoint or an export folder. */
  classifier?: ClassifierJobBase;
  exportDir?: string;
  images: { name: string; base64?: string; path?: string }[];
}

export interface LrFindJobPayload {
  backbone: BackboneRef;
  data: DataRef;
  config: TrainConfig;
  steps: number;
}
