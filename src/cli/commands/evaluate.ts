/** `finetune eval`, `finetune export` and `finetune predict`. */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Booted } from '../../main/boot';
import type { Evaluation } from '../../shared/contract';
import { AppError } from '../../shared/errors';

function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

/** The evaluation as a terminal report: headline, per-class table, confusion matrix, top losses. */
export function formatEvaluation(e: Evaluation): string {
  const lines = [
    `Run ${e.runId}, ${e.split} split, ${e.checkpoint} checkpoint${e.tta !== 'none' ? `, TTA ${e.tta}` : ''}`,
    `accuracy ${pct(e.accuracy)}  loss ${e.loss.toFixed(4)}  ${e.topK.map((t) => `top-${t.k} ${pct(t.accuracy)}`).join('  ')}`,
    '',
  ];
  const w = Math.max(8, ...e.perClass.map((c) => c.name.length));
  lines.push(`${'class'.padEnd(w)}  precision  recall     f1  support`);
  const row = (name: string, p: number, r: number, f: number, s: number | string) =>
    `${name.padEnd(w)}  ${p.toFixed(3).padStart(9)}  ${r.toFixed(3).padStart(6)}  ${f.toFixed(3).padStart(5)}  ${String(s).padStart(7)}`;
  for (const c of e.perClass) lines.push(row(c.name, c.precision, c.recall, c.f1, c.support));
  const n = e.perClass.reduce((a, c) => a + c.support, 0);
  lines.push(row('macro', e.macro.precision, e.macro.recall, e.macro.f1, n));
  lines.push(row('weighted', e.weighted.precision, e.weighted.recall, e.weighted.f1, n));
  lines.push('', 'confusion (rows: true, columns: predicted)');
  const cw = Math.max(5, ...e.classNames.map((c) => c.length));
  lines.push(`${''.padEnd(w)}  ${e.classNames.map((c) => c.padStart(cw)).join(' ')}`);
  e.confusion.forEach((r, i) => lines.push(`${e.classNames[i].padEnd(w)}  ${r.map((v) => String(v).padStart(cw)).join(' ')}`));
  if (e.topLosses.length) {
    lines.push('', 'top losses');
    for (const t of e.topLosses.slice(0, 10)) lines.push(`  ${t.loss.toFixed(3)}  true ${t.trueClass}, predicted ${t.predicted} (${pct(t.confidence)})  ${t.path}`);
  }
  return lines.join('\n');
}

export async function evalCommand(args: string[], app: Booted): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { split: { type: 'string', default: 'val' }, checkpoint: { type: 'string', default: 'best' }, tta: { type: 'string' }, json: { type: 'boolean' } },
  });
  if (positionals.length !== 1) throw new AppError('bad_arguments', 'Usage: finetune eval RUN [--split val|test] [--checkpoint best|last] [--tta none|flip] [--json]');
  const e = await app.call('eval:run', { runId: positionals[0], split: values.split as never, checkpoint: values.checkpoint as never, tta: values.tta as never });
  console.log(values.json ? JSON.stringify(e) : formatEvaluation(e));
  return 0;
}

export async function exportCommand(args: string[], app: Booted): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { out: { type: 'string' }, json: { type: 'boolean' } } });
  if (positionals.length !== 1) throw new AppError('bad_arguments', 'Usage: finetune export RUN --out DIR [--json]');
  const r = await app.call('export:run', { runId: positionals[0], outDir: values.out });
  if (values.json) console.log(JSON.stringify(r));
  else {
    console.log(`Exported to ${r.dir}: ${r.files.join(', ')}`);
    console.log(r.parity.message);
  }
  return r.parity.ok ? 0 : 1;
}

const IMAGE_EXT = /\.(jpe?g|png|webp|gif|tiff?|avif|bmp)$/i;

function expandImages(inputs: string[]): string[] {
  const out: string[] = [];
  for (const p of inputs) {
    if (!fs.existsSync(p)) throw new AppError('not_found', `No such file or folder: ${p}`);
    if (fs.statSync(p).isDirectory()) {
      for (const e of fs.readdirSync(p, { recursive: true }) as string[]) if (IMAGE_EXT.test(e)) out.push(path.join(p, e));
    } else out.push(p);
  }
  return out.sort();
}

export async function predictCommand(args: string[], app: Booted): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { run: { type: 'string' }, json: { type: 'boolean' }, csv: { type: 'boolean' } } });
  // finetune predict MODEL_DIR IMAGE... | finetune predict --run RUN IMAGE...
  const [first, ...rest] = positionals;
  const exportDir = values.run ? undefined : first;
  const images = expandImages(values.run ? positionals : rest);
  if (!images.length) throw new AppError('bad_arguments', 'Usage: finetune predict MODEL_DIR IMAGE_OR_FOLDER... [--json|--csv]  (or --run RUN instead of MODEL_DIR)');
  const preds = await app.call('predict:images', { exportDir, runId: values.run, paths: images });
  if (values.json) console.log(JSON.stringify(preds));
  else if (values.csv) {
    const labels = preds[0]?.probabilities.map((p) => p.label).sort() ?? [];
    console.log(['image', 'predicted', 'confidence', ...labels].join(','));
    for (const p of preds) {
      const by = new Map(p.probabilities.map((x) => [x.label, x.p]));
      console.log([JSON.stringify(p.name), p.top, p.confidence.toFixed(6), ...labels.map((l) => (by.get(l) ?? 0).toFixed(6))].join(','));
    }
  } else for (const [i, p] of preds.entries()) console.log(`${images[i]}: ${p.top} (${pct(p.confidence)})`);
  return 0;
}
