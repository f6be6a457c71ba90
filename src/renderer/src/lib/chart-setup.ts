/**
 * chart.js registration (only the pieces the app uses, so the bundle stays small), the theme
 * colours read from the CSS variables, and a tiny plugin that draws vertical markers (where
 * layer groups unfroze, the suggested learning rate).
 */
import {
  Chart,
  BarController,
  BarElement,
  CategoryScale,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  LogarithmicScale,
  PointElement,
  ScatterController,
  Tooltip,
  type ChartOptions,
  type ChartType,
  type Plugin,
} from 'chart.js';
import { cssVar } from './palette';

export interface Marker {
  x: number;
  label: string;
  colour?: string;
}

declare module 'chart.js' {
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  interface PluginOptionsByType<TType extends ChartType> {
    markers?: { lines: Marker[] };
  }
}

const markersPlugin: Plugin = {
  id: 'markers',
  afterDatasetsDraw(chart, _args, opts: { lines?: Marker[] }) {
    const lines = opts?.lines ?? [];
    const x = chart.scales.x;
    if (!x || !lines.length) return;
    const { ctx, chartArea } = chart;
    ctx.save();
    for (const m of lines) {
      const px = x.getPixelForValue(m.x);
      if (px < chartArea.left || px > chartArea.right) continue;
      ctx.strokeStyle = m.colour ?? cssVar('--danger', '#c92a2a');
      ctx.setLineDash([4, 4]);
      ctx.beginPath();
      ctx.moveTo(px, chartArea.top);
      ctx.lineTo(px, chartArea.bottom);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillStyle = ctx.strokeStyle;
      ctx.font = '11px system-ui, sans-serif';
      ctx.fillText(m.label, Math.min(px + 4, chartArea.right - ctx.measureText(m.label).width), chartArea.top + 12);
    }
    ctx.restore();
  },
};

let registered = false;

/** Register the controllers, scales and plugins once per page. */
export function registerCharts(): void {
  if (registered) return;
  Chart.register(
    LineController,
    LineElement,
    PointElement,
    BarController,
    BarElement,
    ScatterController,
    LinearScale,
    LogarithmicScale,
    CategoryScale,
    Legend,
    Tooltip,
    markersPlugin,
  );
  registered = true;
}

/** Defaults every chart in the app shares (no animation, theme colours), under the caller's options. */
export function themedOptions<T extends ChartType>(options: ChartOptions<T> | undefined): ChartOptions<T> {
  // chart.js' option types are deep generics; the merge itself is plain object work.
  const o = (options ?? {}) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  const text = cssVar('--muted', '#62626b');
  const grid = cssVar('--border', '#dcdce2');
  const scales: Record<string, unknown> = {};
  for (const [id, sc] of Object.entries((o.scales ?? { x: {}, y: {} }) as Record<string, Record<string, unknown>>)) {
    scales[id] = {
      ...sc,
      ticks: { color: text, ...(sc.ticks as object) },
      grid: { color: grid, ...(sc.grid as object) },
      title: sc.title ? { color: text, display: true, ...(sc.title as object) } : undefined,
    };
  }
  return {
    responsive: true,
    maintainAspectRatio: false,
    animation: false,
    normalized: true,
    ...o,
    scales,
    plugins: { ...o.plugins, legend: { labels: { color: text, boxWidth: 12 }, ...o.plugins?.legend } },
  } as ChartOptions<T>;
}
