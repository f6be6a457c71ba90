/** Colours for charts: one per run or series, distinguishable in light and dark themes. */
export const SERIES_COLOURS = ['#4c6ef5', '#f76707', '#2b8a3e', '#e64980', '#7048e8', '#1098ad', '#e8590c', '#5c940d'];

/** The i-th series colour, cycling. */
export function seriesColour(i: number): string {
  return SERIES_COLOURS[i % SERIES_COLOURS.length];
}

/** A CSS custom property's current value (charts draw on canvas, so they cannot use var()). */
export function cssVar(name: string, fallback: string): string {
  if (typeof document === 'undefined') return fallback;
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}
