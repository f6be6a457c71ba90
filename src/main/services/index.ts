/**
 * All verbs of the contract, implemented once. Electron IPC, the HTTP bridge and the CLI
 * all call this object, so a verb behaves the same everywhere.
 */
import type { Api } from '../../shared/contract';
import type { AppContext } from './context';
import { createAppServices } from './app';

export function createServices(ctx: AppContext): Api {
  const api = {
    ...createAppServices(ctx),
  } satisfies Api;
  return api;
}
