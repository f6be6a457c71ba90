/**
 * The `datasets:*` verbs: import a folder into a snapshot with its health report, list and
 * open snapshots, page through thumbnails, preview augmentation. Progress streams as events.
 */
import { z } from 'zod';
import { verb } from './define';

export type SplitName = 'train' | 'val' | 'test';

/** Returned with every import and kept in the snapshot. */
export interface HealthReport {
  snapshotId: string;
  name: string;
  root: string;
  layout: string;
  classes: string[];
  /** counts[split][class] */
  counts: Record<string, Record<string, number>>;
  total: number;
  /** Largest class / smallest class over all splits (1 = balanced). */
  imbalanceRatio: number;
  skipped: { path: string; reason: string }[];
  duplicates: { hash: string; paths: string[] }[];
  /** Identical files in more than one split. */
  leaks: { hash: string; paths: string[]; splits: SplitName[] }[];
  /** Identical files under different labels. */
  conflicts: { hash: string; paths: string[]; labels: string[] }[];
  small: { path: string; width: number; height: number }[];
  /** Readable but probably not real examples (placeholder graphics). */
  suspect: { path: string; reason: string }[];
  tooFewToSplit: string[];
  warnings: string[];
  usable: boolean;
}

export interface DatasetSummary {
  id: string;
  name: string;
  root: string;
  layout: string;
  createdAt: number;
  classes: string[];
  counts: Record<string, Record<string, number>>;
  total: number;
  warnings: number;
  options: { val: number; test: number; seed: number };
}

export interface DatasetDetail extends DatasetSummary {
  report: HealthReport;
}

export interface ThumbnailPage {
  total: number;
  items: { index: number; path: string; label: string; split: SplitName; src: string }[];
}

export interface DatasetsEvents {
  'datasets:progress': { phase: 'importing'; done: number; total: number; etaSeconds: number | null };
}

const augmentSchema = z
  .object({
    randomResizedCrop: z.union([z.literal(false), z.object({ scale: z.tuple([z.number().gt(0).max(1), z.number().gt(0).max(1)]), ratio: z.tuple([z.number().gt(0), z.number().gt(0)]) })]).optional(),
    hflip: z.boolean().optional(),
    vflip: z.boolean().optional(),
    rotation: z.number().min(0).max(180).optional(),
    brightness: z.number().min(0).max(1).optional(),
    contrast: z.number().min(0).max(1).optional(),
    saturation: z.number().min(0).max(1).optional(),
    hue: z.number().min(0).max(0.5).optional(),
  })
  .strict();

const splitEnum = z.enum(['train', 'val', 'test']);

export const datasetsVerbs = {
  'datasets:import': verb(
    z
      .object({
        path: z.string().min(1, 'Give the folder (or CSV) to import.'),
        name: z.string().max(200).optional(),
        val: z.number().min(0).max(0.9).default(0.2),
        test: z.number().min(0).max(0.9).default(0),
        seed: z.number().int().min(0).default(0),
      })
      .strict(),
  ).returns<HealthReport>(),
  'datasets:cancelImport': verb(z.object({}).strict()).returns<{ cancelled: boolean }>(),
  'datasets:list': verb(z.object({}).strict()).returns<DatasetSummary[]>(),
  'datasets:get': verb(z.object({ id: z.string().min(1) }).strict()).returns<DatasetDetail>(),
  'datasets:thumbnails': verb(
    z
      .object({
        id: z.string().min(1),
        className: z.string().optional(),
        split: splitEnum.optional(),
        offset: z.number().int().min(0).default(0),
        limit: z.number().int().min(1).max(200).default(48),
        size: z.number().int().min(32).max(256).default(96),
      })
      .strict(),
  ).returns<ThumbnailPage>(),
  'datasets:preview': verb(
    z
      .object({
        id: z.string().min(1),
        /** Index into the snapshot's files (thumbnails give it); default the first training image. */
        index: z.number().int().min(0).optional(),
        n: z.number().int().min(1).max(32).default(8),
        seed: z.number().int().min(0).default(0),
        size: z.number().int().min(32).max(512).default(224),
        augment: augmentSchema.optional(),
      })
      .strict(),
  ).returns<{ path: string; original: string; images: string[] }>(),
};
