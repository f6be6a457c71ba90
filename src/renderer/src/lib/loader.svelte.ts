/**
 * One async value with its loading flag and readable error: every view fetches through this,
 * so a failing verb shows a message instead of leaving the screen blank.
 */
import { untrack } from 'svelte';
import { errorMessage } from './format';

export class Loader<T> {
  value = $state.raw<T | null>(null);
  error = $state.raw<string | null>(null);
  loading = $state(false);
  /** Guards against an older request finishing after a newer one. */
  #ticket = 0;

  /** Run `fn`; keeps the previous value visible while reloading. Returns the value or null on error. */
  async load(fn: () => Promise<T>): Promise<T | null> {
    const ticket = ++this.#ticket;
    untrack(() => {
      this.loading = true;
      this.error = null;
    });
    try {
      // untrack: called from an effect, the state fn reads must not become the effect's dependencies.
      const v = await untrack(fn);
      if (ticket === this.#ticket) this.value = v;
      return v;
    } catch (err) {
      if (ticket === this.#ticket) this.error = errorMessage(err);
      return null;
    } finally {
      if (ticket === this.#ticket) this.loading = false;
    }
  }

  reset(): void {
    this.#ticket++;
    this.value = null;
    this.error = null;
    this.loading = false;
  }
}
