/** Small, pure number and time formatters shared by the views (no Svelte here). */

/** 0.8954 -> "89.5%"; null/NaN -> "–". */
export function pct(x: number | null | undefined, digits = 1): string {
  return x == null || !Number.isFinite(x) ? '–' : `${(x * 100).toFixed(digits)}%`;
}

/** A metric value with a sensible number of digits; NaN/null (diverged runs arrive as null over JSON) -> "–". */
export function num(x: number | null | undefined, digits = 4): string {
  if (x == null || Number.isNaN(x)) return '–';
  if (!Number.isFinite(x)) return x > 0 ? '∞' : '-∞';
  return Math.abs(x) >= 1000 ? x.toFixed(0) : Number(x.toPrecision(digits)).toString();
}

/** Learning rates read best in exponent form: 0.0003 -> "3.0e-4". */
export function lr(x: number | null | undefined): string {
  if (x == null || !Number.isFinite(x)) return '–';
  return x === 0 ? '0' : x.toExponential(1).replace('e+', 'e');
}

/** Seconds -> "1 h 02 min", "3 min 20 s", "12 s". */
export function duration(seconds: number | null | undefined): string {
  if (seconds == null || !Number.isFinite(seconds) || seconds < 0) return '–';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/** Epoch milliseconds -> local "2025-01-31 14:05". */
export function dateTime(ms: number | null | undefined): string {
  if (ms == null) return '–';
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** 1_234_567 -> "1.23 M". */
export function count(n: number | null | undefined): string {
  if (n == null || !Number.isFinite(n)) return '–';
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)} k`;
  return String(n);
}

/** Run ids are long hashes; the UI shows a prefix the API accepts as a reference. */
export function shortId(id: string): string {
  return id.slice(0, 8);
}

/** The readable message of anything thrown (ApiCallError carries the server's message). */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  if (typeof err === 'string') return err;
  try {
    return JSON.stringify(err);
  } catch {
    return String(err);
  }
}
