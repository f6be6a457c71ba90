/**
 * Dataset snapshots as the Datasets and New experiment screens see them: the list, the import
 * in progress (count, ETA, cancel) and the selected snapshot's health report. Thumbnails and
 * augmentation previews are fetched on demand by the components that show them.
 */
import { call, onEvent } from '../lib/transport';
import { Loader } from '../lib/loader.svelte';
import { errorMessage } from '../lib/format';
import type { DatasetDetail, DatasetSummary, HealthReport, ThumbnailPage } from '../../../shared/contract/datasets';

export type Thumb = ThumbnailPage['items'][number];

export interface ImportRequest {
  path: string;
  name?: string;
  val: number;
  test: number;
  seed: number;
}

export interface ImportProgress {
  done: number;
  total: number;
  etaSeconds: number | null;
}

export class DatasetsStore {
  snapshots = $state.raw<DatasetSummary[]>([]);
  error = $state.raw<string | null>(null);
  selectedId = $state<string | null>(null);
  detail = new Loader<DatasetDetail>();
  importing = $state.raw<ImportProgress | null>(null);
  importError = $state.raw<string | null>(null);
  /** The report of the last import, shown until another snapshot is picked. */
  lastImport = $state.raw<HealthReport | null>(null);

  constructor() {
    onEvent('datasets:progress', (p) => {
      if (this.importing) this.importing = { done: p.done, total: p.total, etaSeconds: p.etaSeconds };
    });
  }

  async refresh(): Promise<void> {
    try {
      this.snapshots = await call('datasets:list', {});
      this.error = null;
    } catch (err) {
      this.error = errorMessage(err);
    }
  }

  select(id: string | null): void {
    if (id === this.selectedId && this.detail.value?.id === id) return;
    this.selectedId = id;
    if (id) void this.detail.load(() => call('datasets:get', { id }));
    else this.detail.reset();
  }

  /** Import a folder; resolves with the new snapshot's id, or null when it failed (see importError). */
  async import(req: ImportRequest): Promise<string | null> {
    this.importError = null;
    this.importing = { done: 0, total: 0, etaSeconds: null };
    try {
      const report = await call('datasets:import', req);
      this.lastImport = report;
      await this.refresh();
      this.select(report.snapshotId);
      return report.snapshotId;
    } catch (err) {
      this.importError = errorMessage(err);
      return null;
    } finally {
      this.importing = null;
    }
  }

  async cancelImport(): Promise<void> {
    try {
      await call('datasets:cancelImport', {});
    } catch (err) {
      this.importError = errorMessage(err);
    }
  }

  thumbnails(id: string, className: string, offset: number, limit: number): Promise<ThumbnailPage> {
    return call('datasets:thumbnails', { id, className, offset, limit, size: 96 });
  }

  async preview(id: string, t: Thumb, seed: number): Promise<string[]> {
    const r = await call('datasets:preview', { id, index: t.index, n: 8, seed, size: 160 });
    return [r.original, ...r.images];
  }
}
