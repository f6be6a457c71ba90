/**
 * FINETUNE_TRACE=1 prints timestamped marks to stderr (seconds since the process started,
 * the same clock in the main thread and the engine worker), to see where a run's wall time
 * goes. Off by default: one env lookup at import, then a boolean test per mark. Written
 * synchronously to fd 2: a worker's process.stderr is flushed by its event loop, which a
 * busy engine worker may not turn for seconds.
 */
import fs from 'node:fs';
import { isMainThread } from 'node:worker_threads';

const enabled = !!process.env.FINETUNE_TRACE && process.env.FINETUNE_TRACE !== '0';

/** Print `label` with the process uptime, when FINETUNE_TRACE is set. */
export function trace(label: string): void {
  if (enabled) fs.writeSync(2, `[trace ${process.uptime().toFixed(3)} ${isMainThread ? 'main' : 'worker'}] ${label}\n`);
}
