/**
 * All verbs of the contract, implemented once. Electron IPC, the HTTP bridge and the CLI
 * all call this object, so a verb behaves the same everywhere.
 */
import type { Api } from '../../shared/contract';
import type { AppContext } from './context';
import { createAppServices } from './app';
import { createRunServices } from './runs';
import { createTrainingServices } from './training';
import { createDatasetServices } from './datasets';
import type { Store } from '../store';
import type { RunManager } from './run-manager';

export function createServices(ctx: AppContext, store: Store, runs: RunManager): Api {
  const api = {
    ...createAppServices(ctx),
    ...createRunServices(ctx, store),
    ...createDatasetServices(ctx, store),
    ...createTrainingServices(ctx, store, runs),
  } satisfies Api;
  return api;
}
