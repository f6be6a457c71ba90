/**
 * The app-lifetime state objects, created once in App.svelte and handed to views through
 * Svelte context (no module singletons, so tests and multiple windows stay independent).
 */
import { getContext, setContext } from 'svelte';
import { Router } from './router.svelte';
import { TrainingSession } from './training-session.svelte';
import { RunsStore } from './runs-store.svelte';
import { DatasetsStore } from './datasets-store.svelte';
import { ExperimentDraft } from './experiment-draft.svelte';
import { errorMessage } from '../lib/format';

export class AppState {
  router = new Router();
  session = new TrainingSession();
  runs = new RunsStore();
  datasets = new DatasetsStore();
  draft = new ExperimentDraft();
  /** Errors nobody caught (a rejected promise in a handler): shown in a banner, never lost. */
  uncaught = $state.raw<string | null>(null);

  constructor() {
    window.addEventListener('unhandledrejection', (e) => (this.uncaught = errorMessage(e.reason)));
    window.addEventListener('error', (e) => {
      // Benign browser notice when charts resize within a frame; not an app error.
      if (/ResizeObserver loop/.test(e.message)) return;
      this.uncaught = errorMessage(e.error ?? e.message);
    });
  }
}

const KEY = Symbol('finetune-app');

export function provideApp(): AppState {
  return setContext(KEY, new AppState());
}

/** The app state from any component below App.svelte. */
export function useApp(): AppState {
  const app = getContext<AppState | undefined>(KEY);
  if (!app) throw new Error('useApp() called outside App.svelte');
  return app;
}
