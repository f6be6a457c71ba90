/** `finetune import DIR`: check a folder, snapshot and split it, print the health report. */
import { parseArgs } from 'node:util';
import type { Booted } from '../../main/boot';
import type { HealthReport } from '../../shared/contract';
import { AppError } from '../../shared/errors';
import { bar, formatSeconds } from '../progress';

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new AppError('bad_arguments', `--${name} must be a number, got "${v}".`);
  return n;
}

/** The health report for a terminal. */
export function formatReport(r: HealthReport): string {
  const splits = Object.keys(r.counts);
  const w = Math.max(5, ...r.classes.map((c) => c.length));
  const lines = [`Snapshot ${r.snapshotId} "${r.name}" (${r.layout}) from ${r.root}`, `${r.total} images, ${r.classes.length} classes, imbalance ${Number.isFinite(r.imbalanceRatio) ? r.imbalanceRatio.toFixed(2) : 'inf'}`, ''];
  lines.push(`${'class'.padEnd(w)}  ${splits.map((s) => s.padStart(6)).join('  ')}`);
  for (const c of r.classes) lines.push(`${c.padEnd(w)}  ${splits.map((s) => String(r.counts[s]?.[c] ?? 0).padStart(6)).join('  ')}`);
  const section = (title: string, items: string[]) => {
    if (!items.length) return;
    lines.push('', `${title} (${items.length}):`);
    for (const i of items.slice(0, 20)) lines.push(`  ${i}`);
    if (items.length > 20) lines.push(`  ... and ${items.length - 20} more (--json lists all)`);
  };
  section('Skipped', r.skipped.map((s) => `${s.path}: ${s.reason}`));
  section('Look like placeholders', r.suspect.map((s) => `${s.path}: ${s.reason}`));
  section('Leaks (same image in several splits)', r.leaks.map((l) => `${l.paths.join(' = ')} [${l.splits.join(', ')}]`));
  section('Duplicates', r.duplicates.map((d) => d.paths.join(' = ')));
  section('Very small', r.small.map((s) => `${s.path}: ${s.width}x${s.height}`));
  if (r.warnings.length) {
    lines.push('', 'Warnings:');
    for (const wng of r.warnings) lines.push(`  - ${wng}`);
  }
  lines.push('', r.usable ? 'Usable for training.' : 'NOT usable for training as it is: see the warnings.');
  return lines.join('\n');
}

export async function importCommand(args: string[], app: Booted): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { name: { type: 'string' }, val: { type: 'string' }, test: { type: 'string' }, seed: { type: 'string' }, json: { type: 'boolean' } },
  });
  if (positionals.length !== 1) throw new AppError('bad_arguments', 'Usage: finetune import DIR [--name N] [--val 0.2] [--test 0] [--seed S] [--json]');
  const tty = process.stderr.isTTY && !values.json;
  const unsubscribe = app.ctx.events.subscribe(({ event, payload }) => {
    if (event !== 'datasets:progress' || !tty) return;
    const p = payload as { done: number; total: number; etaSeconds: number | null };
    process.stderr.write(`\r${bar(p.done, p.total)} ${p.done}/${p.total} ETA ${formatSeconds(p.etaSeconds ?? NaN)}`);
  });
  try {
    const report = await app.call('datasets:import', {
      path: positionals[0],
      name: values.name,
      val: num('val', values.val) ?? 0.2,
      test: num('test', values.test) ?? 0,
      seed: num('seed', values.seed) ?? 0,
    });
    if (tty) process.stderr.write('\r\x1b[2K');
    console.log(values.json ? JSON.stringify(report) : formatReport(report));
    return report.usable ? 0 : 3;
  } finally {
    unsubscribe();
  }
}
