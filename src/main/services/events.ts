/** A tiny typed pub/sub: services emit, transports (IPC windows, WebSockets, the CLI) listen. */
import type { EventEnvelope, EventName, Events } from '../../shared/contract';

export type Listener = (envelope: EventEnvelope) => void;

export class EventHub {
  private listeners = new Set<Listener>();

  emit<E extends EventName>(event: E, payload: Events[E]): void {
    const envelope = { event, payload } as EventEnvelope;
    for (const l of this.listeners) {
      try {
        l(envelope);
      } catch {
        // A broken listener (closed socket, destroyed window) must not stop the others.
      }
    }
  }

  /** Returns the unsubscribe function. */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
