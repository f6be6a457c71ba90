/**
 * The renderer's only door to the app: `call(verb, args)` typed by the contract, and
 * `onEvent`. In Electron it goes through the preload's `window.api`; in `serve` through
 * HTTP + WebSocket on the same origin (the token travels as a cookie set on first load).
 */
import type { ArgsOf, EventEnvelope, EventName, Events, Result, ResultOf, VerbName } from '../../../shared/contract';

interface PreloadApi {
  invoke(verb: string, args: unknown): Promise<Result<unknown>>;
  onEvent(listener: (e: EventEnvelope) => void): () => void;
  platform: 'electron';
}

declare global {
  interface Window {
    api?: PreloadApi;
  }
}

/** Thrown in the renderer for `{ ok: false }` results; views show `message`. */
export class ApiCallError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const isElectron = typeof window !== 'undefined' && !!window.api;

function tokenFromUrl(): string | null {
  const t = new URLSearchParams(location.search).get('token');
  if (t) sessionStorage.setItem('finetune_token', t);
  return t ?? sessionStorage.getItem('finetune_token');
}

async function invokeHttp(verb: string, args: unknown): Promise<Result<unknown>> {
  const token = tokenFromUrl();
  let res: Response;
  try {
    res = await fetch(`/api/invoke/${encodeURIComponent(verb)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(args ?? {}),
    });
  } catch (err) {
    return { ok: false, error: { code: 'offline', message: `The app server is not reachable (${(err as Error).message}). Is \`finetune serve\` still running?` } };
  }
  try {
    return (await res.json()) as Result<unknown>;
  } catch {
    return { ok: false, error: { code: `http_${res.status}`, message: `The server answered HTTP ${res.status}.` } };
  }
}

/** Call a verb; resolves with its value or throws ApiCallError with a readable message. */
export async function call<V extends VerbName>(verb: V, args: ArgsOf<V>): Promise<ResultOf<V>> {
  const r = isElectron ? await window.api!.invoke(verb, args) : await invokeHttp(verb, args);
  if (!r.ok) throw new ApiCallError(r.error.code, r.error.message);
  return r.value as ResultOf<V>;
}

type Handler = (e: EventEnvelope) => void;
const handlers = new Set<Handler>();
let socket: WebSocket | null = null;

function connectSocket(): void {
  const token = tokenFromUrl();
  const url = new URL('/api/events', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  url.search = token ? `?token=${encodeURIComponent(token)}` : '';
  socket = new WebSocket(url.href);
  socket.onmessage = (m) => {
    const envelope = JSON.parse(String(m.data)) as EventEnvelope;
    for (const h of handlers) h(envelope);
  };
  socket.onclose = () => {
    socket = null;
    setTimeout(() => handlers.size && connectSocket(), 1000);
  };
}

let electronUnsub: (() => void) | null = null;

/** Subscribe to one event; returns the unsubscribe function. */
export function onEvent<E extends EventName>(event: E, listener: (payload: Events[E]) => void): () => void {
  const h: Handler = (e) => {
    if (e.event === event) listener(e.payload as Events[E]);
  };
  handlers.add(h);
  if (isElectron) {
    electronUnsub ??= window.api!.onEvent((e) => {
      for (const x of handlers) x(e);
    });
  } else if (!socket) connectSocket();
  return () => handlers.delete(h);
}
