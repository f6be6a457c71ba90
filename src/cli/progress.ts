/** Terminal progress for long operations: a bar, counts, speed and ETA on one line. */
import type { TrainProgress } from '../shared/contract';

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '--:--';
  const m = Math.floor(s / 60);
  const sec = Math.round(s % 60);
  return m >= 60 ? `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m` : `${m}:${String(sec).padStart(2, '0')}`;
}

export function bar(done: number, total: number, width = 24): string {
  const f = total > 0 ? Math.min(1, done / total) : 0;
  const n = Math.round(f * width);
  return `[${'#'.repeat(n)}${'.'.repeat(width - n)}]`;
}

export function progressLine(p: TrainProgress): string {
  return `epoch ${p.epoch}/${p.epochs} ${bar(p.batch, p.batches)} ${p.batch}/${p.batches} loss ${p.loss.toFixed(4)} acc ${p.accuracy.toFixed(3)} ${p.imagesPerSec.toFixed(1)} img/s ETA ${formatSeconds(p.etaSeconds)}`;
}
