/** Dataset snapshots (filled in once the datasets contract lands). */
export interface SnapshotChoice {
  id: string;
  name: string;
}

export class DatasetsStore {
  snapshots = $state.raw<SnapshotChoice[]>([]);
  error = $state.raw<string | null>(null);

  async refresh(): Promise<void> {}
}
