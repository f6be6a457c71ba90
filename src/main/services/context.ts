/**
 * What every service gets: where things live, where models come from, and the event hub.
 * Built once at boot (Electron, serve, CLI) and passed in; there are no singletons.
 */
import path from 'node:path';
import fs from 'node:fs';
import { EventHub } from './events';

export interface AppPaths {
  /** The home folder: log, caches, checkpoints, exports. */
  home: string;
  /** SQLite experiment log. */
  db: string;
  /** Downloaded / verified backbones, by relative path. */
  modelsCache: string;
  /** Dataset snapshots (JSON) and the decode cache. */
  datasets: string;
  decodeCache: string;
  /** One folder per run: checkpoints, exports, plots. */
  runs: string;
}

export interface AppContext {
  paths: AppPaths;
  /** Models mirrors in the order they are tried (folders or http(s) URLs). */
  mirrors: string[];
  events: EventHub;
  appVersion: string;
  /** Set when running inside Electron (its version), for `doctor`. */
  electronVersion: string | null;
  /** The OS folder picker, provided by the desktop shell only. */
  pickFolder?: (title?: string) => Promise<string | null>;
}

export function appPaths(home: string): AppPaths {
  const abs = path.resolve(home);
  return {
    home: abs,
    db: path.join(abs, 'finetune.sqlite'),
    modelsCache: path.join(abs, 'models'),
    datasets: path.join(abs, 'datasets'),
    decodeCache: path.join(abs, 'cache', 'decoded'),
    runs: path.join(abs, 'runs'),
  };
}

export function ensureHome(paths: AppPaths): void {
  for (const dir of [paths.home, paths.modelsCache, paths.datasets, paths.decodeCache, paths.runs]) {
    fs.mkdirSync(dir, { recursive: true });
  }
}
