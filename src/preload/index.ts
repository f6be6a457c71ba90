/**
 * Sandboxed preload (CommonJS): exposes `window.api` with one function per contract verb
 * and an event subscription. Never exposes ipcRenderer itself.
 */
import { contextBridge, ipcRenderer } from 'electron';
import { EVENT_CHANNEL, INVOKE_CHANNEL, verbNames, type EventEnvelope } from '../shared/contract';

const api = {
  invoke: (verb: string, args: unknown) => {
    if (!(verbNames as string[]).includes(verb)) return Promise.resolve({ ok: false, error: { code: 'unknown_verb', message: `Unknown verb ${verb}` } });
    return ipcRenderer.invoke(INVOKE_CHANNEL, verb, args);
  },
  onEvent: (listener: (e: EventEnvelope) => void) => {
    const wrapped = (_: unknown, envelope: EventEnvelope) => listener(envelope);
    ipcRenderer.on(EVENT_CHANNEL, wrapped);
    return () => {
      ipcRenderer.removeListener(EVENT_CHANNEL, wrapped);
    };
  },
  platform: 'electron' as const,
};

export type PreloadApi = typeof api;
contextBridge.exposeInMainWorld('api', api);
