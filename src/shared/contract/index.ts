/**
 * The one contract: every verb the renderer, the HTTP bridge and the CLI may call,
 * with its argument schema and result type, plus the events pushed to the UI.
 */
import type { z } from 'zod';
import type { VerbSpec } from './define';
import { appVerbs } from './app';
import { datasetsVerbs, type DatasetsEvents } from './datasets';
import { trainingVerbs, type TrainingEvents } from './training';
import { runsVerbs, type RunsEvents } from './runs';

export * from './define';
export * from './app';
export * from './datasets';
export * from './training';
export * from './runs';

export const verbs = {
  ...appVerbs,
  ...datasetsVerbs,
  ...trainingVerbs,
  ...runsVerbs,
};

export type Verbs = typeof verbs;
export type VerbName = keyof Verbs;
export type ArgsOf<V extends VerbName> = z.input<Verbs[V]['args']>;
export type ParsedArgsOf<V extends VerbName> = z.output<Verbs[V]['args']>;
export type ResultOf<V extends VerbName> = Verbs[V] extends VerbSpec<z.ZodType, infer R> ? R : never;

/** What the services implement and what every transport exposes. */
export type Api = { [V in VerbName]: (args: ParsedArgsOf<V>) => Promise<ResultOf<V>> };

/** Client side: arguments before defaults are applied. */
export type Client = <V extends VerbName>(verb: V, args: ArgsOf<V>) => Promise<ResultOf<V>>;

/** Pushed from main to the UI (IPC `send` or WebSocket). */
export interface Events extends DatasetsEvents, TrainingEvents, RunsEvents {
  'app:log': { level: 'info' | 'warn' | 'error'; message: string };
}
export type EventName = keyof Events;
export interface EventEnvelope<E extends EventName = EventName> {
  event: E;
  payload: Events[E];
}

export const verbNames = Object.keys(verbs) as VerbName[];
export const EVENT_CHANNEL = 'finetune:event';
export const INVOKE_CHANNEL = 'finetune:invoke';
