/**
 * The experiment log as the Runs, Compare, Evaluation and Predict screens see it: the list of
 * runs (refetched when the server says runs changed), the client-side sort and filter, and
 * the selection that feeds Compare.
 */
import { call, onEvent } from '../lib/transport';
import { errorMessage } from '../lib/format';
import type { RunSummary } from '../../../shared/contract/runs';

export type SortKey = 'name' | 'experiment' | 'snapshot' | 'backbone' | 'strategy' | 'status' | 'best' | 'duration' | 'started';

/** Best validation accuracy of a run, or null before its first epoch. */
export function bestValAccuracy(r: RunSummary): number | null {
  return r.metrics.val_accuracy?.best ?? null;
}

/** Wall time of a run in seconds (up to now while it runs). */
export function runSeconds(r: RunSummary): number | null {
  const end = r.endedAt ?? (r.status === 'running' ? Date.now() : r.heartbeatAt);
  return end ? (end - r.startedAt) / 1000 : null;
}

function sortValue(r: RunSummary, key: SortKey): string | number {
  switch (key) {
    case 'best':
      return bestValAccuracy(r) ?? -1;
    case 'duration':
      return runSeconds(r) ?? -1;
    case 'started':
      return r.startedAt;
    case 'snapshot':
      return r.snapshotId ?? '';
    default:
      return String(r[key] ?? '').toLowerCase();
  }
}

export class RunsStore {
  runs = $state.raw<RunSummary[]>([]);
  error = $state.raw<string | null>(null);
  loading = $state(false);
  loaded = $state(false);
  sortKey = $state<SortKey>('started');
  sortDesc = $state(true);
  filter = $state('');
  statusFilter = $state('');
  /** Run ids picked for comparison, in the order they were picked. */
  selected = $state.raw<string[]>([]);

  #stop: () => void;

  constructor() {
    let timer: ReturnType<typeof setTimeout> | null = null;
    // Bursts of changes (a run writing artifacts) become one refetch.
    this.#stop = onEvent('runs:changed', () => {
      timer ??= setTimeout(() => {
        timer = null;
        void this.refresh();
      }, 300);
    });
  }

  async refresh(): Promise<void> {
    this.loading = true;
    try {
      this.runs = await call('runs:list', { limit: 100_000 });
      this.error = null;
      this.selected = this.selected.filter((id) => this.runs.some((r) => r.id === id));
    } catch (err) {
      this.error = errorMessage(err);
    } finally {
      this.loading = false;
      this.loaded = true;
    }
  }

  /** The runs after filter and sort, as the table shows them. */
  visible = $derived.by((): RunSummary[] => {
    const q = this.filter.trim().toLowerCase();
    const rows = this.runs.filter((r) => {
      if (this.statusFilter && r.status !== this.statusFilter) return false;
      if (!q) return true;
      return [r.name, r.id, r.experiment, r.backbone, r.strategy, r.status, r.snapshotId ?? '', ...r.tags].some((s) => s.toLowerCase().includes(q));
    });
    const dir = this.sortDesc ? -1 : 1;
    const key = this.sortKey;
    return rows.sort((a, b) => {
      const x = sortValue(a, key);
      const y = sortValue(b, key);
      return x < y ? -dir : x > y ? dir : 0;
    });
  });

  sortBy(key: SortKey): void {
    if (this.sortKey === key) this.sortDesc = !this.sortDesc;
    else {
      this.sortKey = key;
      this.sortDesc = key === 'best' || key === 'started' || key === 'duration';
    }
  }

  toggle(id: string): void {
    this.selected = this.selected.includes(id) ? this.selected.filter((x) => x !== id) : [...this.selected, id];
  }

  byId(id: string | undefined): RunSummary | undefined {
    return id ? this.runs.find((r) => r.id === id || r.id.startsWith(id)) : undefined;
  }

  async tag(id: string, tag: string, remove = false): Promise<void> {
    const r = await call('runs:tag', { id, tag, remove });
    this.runs = this.runs.map((x) => (x.id === r.id ? { ...x, tags: r.tags } : x));
  }

  async note(id: string, text: string): Promise<void> {
    const r = await call('runs:note', { id, text });
    this.runs = this.runs.map((x) => (x.id === r.id ? { ...x, notes: r.notes } : x));
  }

  async remove(id: string): Promise<void> {
    await call('runs:delete', { id });
    this.runs = this.runs.filter((x) => x.id !== id);
    this.selected = this.selected.filter((x) => x !== id);
  }

  dispose(): void {
    this.#stop();
  }
}
