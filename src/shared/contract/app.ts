/** The `app:*` verbs: what the machine can do (doctor) and the models the app knows. */
import { z } from 'zod';
import { verb } from './define';

export interface BackendReport {
  /** The tfjs backend in use: tensorflow (tfjs-node / -gpu), wasm or cpu. */
  name: string;
  /** Which package provided it. */
  package: string;
  /** Threads the backend computes with (wasm: XNNPACK pool size). */
  threads: number;
  /** Why the faster ones were not picked, in the order they were tried. */
  skipped: { name: string; reason: string }[];
}

export interface DoctorReport {
  appVersion: string;
  node: string;
  platform: string;
  cpus: number;
  memoryGiB: number;
  backend: BackendReport;
  home: string;
  modelsMirrors: string[];
  sqlite: string;
  libvips: string;
  electron: string | null;
}

export interface BackboneInfo {
  id: string;
  title: string;
  /** Path relative to a models mirror (or absolute for a user folder). */
  path: string;
  inputSize: number;
  /** Approximate parameter count and weights size, for the size hint in the GUI. */
  params: number;
  sizeMB: number;
  speedHint: string;
  /** true when it is in the cache or a mirror right now (no download needed). */
  available: boolean;
}

export const appVerbs = {
  'app:doctor': verb(z.object({}).strict()).returns<DoctorReport>(),
  'models:list': verb(z.object({}).strict()).returns<BackboneInfo[]>(),
  /** Desktop only: the OS folder picker. Null when the user cancels; `unsupported` in serve/CLI. */
  'app:pickFolder': verb(z.object({ title: z.string().max(200).optional() }).strict()).returns<{ path: string | null }>(),
};
