/**
 * The `runs:*` and `experiments:list` verbs over the experiment log. Arguments arrive already
 * parsed by the gate (defaults applied); changes are announced as `runs:changed` events so
 * open lists and detail views refetch.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Api } from '../../shared/contract';
import type { runsVerbs } from '../../shared/contract/runs';
import type { Store } from '../store';
import type { AppContext } from './context';

export type RunsVerbName = keyof typeof runsVerbs;
export type RunServices = Pick<Api, RunsVerbName>;

/** The run's own folder under the home's runs/ (checkpoints, plots), if it is safely inside. */
function runFolder(ctx: AppContext, id: string): string | null {
  const dir = path.resolve(ctx.paths.runs, id);
  return path.dirname(dir) === path.resolve(ctx.paths.runs) ? dir : null;
}

/** One async function per runs verb, for the IPC handlers, the HTTP bridge and the CLI. */
export function createRunServices(ctx: AppContext, store: Store): RunServices {
  return {
    'runs:list': async (args) => store.listRuns(args),
    'runs:get': async ({ id }) => store.getRun(id),
    'runs:metrics': async ({ id, keys, afterStep }) => store.getMetrics(id, { keys, afterStep }),
    'runs:compare': async ({ ids, all }) => store.compareRuns(ids, { all }),
    'runs:tag': async ({ id, tag, remove }) => {
      const runId = store.resolveRunId(id);
      const tags = remove ? store.untag(runId, tag) : store.tag(runId, tag);
      ctx.events.emit('runs:changed', { ids: [runId], change: 'tags' });
      return { id: runId, tags };
    },
    'runs:note': async ({ id, text }) => {
      const runId = store.note(id, text);
      ctx.events.emit('runs:changed', { ids: [runId], change: 'notes' });
      return { id: runId, notes: text };
    },
    'runs:delete': async ({ id, keepFiles }) => {
      const runId = store.deleteRun(id);
      let removedFolder: string | null = null;
      const dir = runFolder(ctx, runId);
      if (!keepFiles && dir && fs.existsSync(dir)) {
        // Only the run's own folder in the home; exports written elsewhere belong to the user.
        fs.rmSync(dir, { recursive: true, force: true });
        removedFolder = dir;
      }
      ctx.events.emit('runs:changed', { ids: [runId], change: 'deleted' });
      return { id: runId, removedFolder };
    },
    'runs:export': async ({ ids, format, table }) => store.exportRuns(ids, format, { table }),
    'experiments:list': async () => store.listExperiments(),
  };
}
