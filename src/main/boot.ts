/**
 * Boot reads like a table of contents: resolve folders -> open the log -> build services.
 * Shared by the Electron main process, `finetune serve` and the CLI; no singletons.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { appPaths, ensureHome, type AppContext } from './services/context';
import { EventHub } from './services/events';
import { createServices } from './services';
import { resolveHome, resolveMirrors } from './services/settings';
import type { Api, Client } from '../shared/contract';
import { AppError } from '../shared/errors';
import { invokeVerb } from './services/gate';
import { openStore, type Store } from './store';
import { RunManager } from './services/run-manager';

export interface BootOptions {
  home?: string;
  mirrors?: string[];
  electronVersion?: string | null;
  pickFolder?: (title?: string) => Promise<string | null>;
}

export interface Booted {
  ctx: AppContext;
  api: Api;
  /** Call a verb through the same gate as IPC and HTTP (validation, defaults); throws AppError. */
  call: Client;
  store: Store;
  /** Runs training right now in this process (pause / resume / stop / wait). */
  runs: RunManager;
  close(): Promise<void>;
}

/** The package.json version, found by walking up from this file (works from src/ and out/). */
export function appVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = path.join(dir, 'package.json');
    if (fs.existsSync(p)) {
      const pkg = JSON.parse(fs.readFileSync(p, 'utf8'));
      if (pkg.name === 'finetune-studio') return pkg.version as string;
    }
    dir = path.dirname(dir);
  }
  return '0.0.0';
}

/** Project root (where package.json is), for locating the built renderer. */
export function projectRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    dir = path.dirname(dir);
  }
  return process.cwd();
}

export function createContext(opts: BootOptions = {}): AppContext {
  const paths = appPaths(resolveHome(opts.home));
  ensureHome(paths);
  return {
    paths,
    mirrors: resolveMirrors(opts.mirrors),
    events: new EventHub(),
    appVersion: appVersion(),
    electronVersion: opts.electronVersion ?? null,
    pickFolder: opts.pickFolder,
  };
}

export async function boot(opts: BootOptions = {}): Promise<Booted> {
  const ctx = createContext(opts);
  const store = openStore(ctx.paths.db, { appVersion: ctx.appVersion });
  // Runs left 'running' by a process that died (crash, kill, power loss) become 'interrupted'.
  store.markInterruptedRuns();
  const runs = new RunManager(ctx, store);
  const api = createServices(ctx, store, runs);
  let closed = false;
  const call: Client = async (verb, args) => {
    const r = await invokeVerb(api, verb, args);
    if (!r.ok) throw new AppError(r.error.code, r.error.message);
    return r.value as never;
  };
  return {
    ctx,
    api,
    call,
    store,
    runs,
    close: async () => {
      if (closed) return;
      closed = true;
      await runs.stopAll();
      store.close();
    },
  };
}
