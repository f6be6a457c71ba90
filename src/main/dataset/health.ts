/**
 * The health report returned with every import: per-class counts per split, imbalance,
 * skipped files with reasons, duplicates and cross-split duplicates (leakage), very small
 * images, images that look like placeholders, and classes too small to split.
 */
import type { Split } from './scan';
import type { HealthReport } from '../../shared/contract/datasets';

/** The report's shape is part of the contract (the GUI and the CLI's --json read it). */
export type { HealthReport };

export interface ProbedFile {
  rel: string;
  label: string;
  split: Split;
  hash: string;
  width: number;
  height: number;
}

export const SMALL_SIDE = 64;

/**
 * How flat an image is, on its decoded square: the share of the most common colour (4 bits
 * per channel) and the number of distinct colours. Photos are far from flat; "image not
 * found" graphics and blank frames are mostly one colour.
 */
export function flatness(pixels: Uint8Array): { dominantShare: number; colours: number } {
  // A typed array of the 4096 bins, not a Map, and nothing but the count in the sampling loop:
  // this runs on every imported image.
  const bins = new Uint32Array(4096);
  let n = 0;
  for (let i = 0; i + 2 < pixels.length; i += 3 * 7) {
    bins[((pixels[i] >> 4) << 8) | ((pixels[i + 1] >> 4) << 4) | (pixels[i + 2] >> 4)]++;
    n++;
  }
  let max = 0;
  let colours = 0;
  for (let k = 0; k < bins.length; k++) {
    const c = bins[k];
    if (c === 0) continue;
    colours++;
    if (c > max) max = c;
  }
  return { dominantShare: n ? max / n : 1, colours };
}

/** A reason when the image looks like a placeholder rather than a photo, else null. */
export function placeholderReason(rel: string, f: { dominantShare: number; colours: number }): string | null {
  const name = rel.split('/').pop() ?? rel;
  if (/(not[-_ ]?found|placeholder|missing|no[-_ ]?image|unavailable)/i.test(name)) return `the file name "${name}" suggests a placeholder`;
  // Both at once: a flat background with few colours is a graphic (text on a plain card), while
  // product shots on white keep many colours and greyscale photos keep a spread of tones.
  if (f.dominantShare > 0.75 && f.colours < 64) {
    return `${Math.round(f.dominantShare * 100)}% of the image is one flat colour and it has only ${f.colours} colours: a placeholder or a blank frame?`;
  }
  return null;
}

export function buildReport(o: {
  snapshotId: string;
  name: string;
  root: string;
  layout: string;
  classes: string[];
  files: ProbedFile[];
  skipped: { path: string; reason: string }[];
  suspect: { path: string; reason: string }[];
  tooFewToSplit: string[];
  emptyClasses: string[];
}): HealthReport {
  const counts: Record<string, Record<string, number>> = {};
  const perClass = new Map<string, number>(o.classes.map((c) => [c, 0]));
  for (const f of o.files) {
    counts[f.split] ??= Object.fromEntries(o.classes.map((c) => [c, 0]));
    counts[f.split][f.label]++;
    perClass.set(f.label, (perClass.get(f.label) ?? 0) + 1);
  }
  const sizes = [...perClass.values()];
  const imbalanceRatio = Math.min(...sizes) > 0 ? Math.max(...sizes) / Math.min(...sizes) : Infinity;
  const byHash = new Map<string, ProbedFile[]>();
  for (const f of o.files) byHash.set(f.hash, [...(byHash.get(f.hash) ?? []), f]);
  const duplicates: HealthReport['duplicates'] = [];
  const leaks: HealthReport['leaks'] = [];
  const conflicts: HealthReport['conflicts'] = [];
  for (const [hash, group] of byHash) {
    if (group.length < 2) continue;
    const paths = group.map((g) => g.rel);
    duplicates.push({ hash, paths });
    const splits = [...new Set(group.map((g) => g.split))];
    if (splits.length > 1) leaks.push({ hash, paths, splits });
    const labels = [...new Set(group.map((g) => g.label))];
    if (labels.length > 1) conflicts.push({ hash, paths, labels });
  }
  const small = o.files.filter((f) => Math.min(f.width, f.height) < SMALL_SIDE).map((f) => ({ path: f.rel, width: f.width, height: f.height }));
  const warnings: string[] = [];
  if (imbalanceRatio >= 3) warnings.push(`Classes are imbalanced (largest / smallest = ${imbalanceRatio.toFixed(1)}): consider class weights ("balanced") or the balanced sampler.`);
  if (leaks.length) warnings.push(`${leaks.length} image(s) appear in more than one split: validation accuracy will be optimistic. Remove the copies from one split.`);
  if (conflicts.length) warnings.push(`${conflicts.length} image(s) appear under different labels.`);
  if (o.skipped.length) warnings.push(`${o.skipped.length} file(s) could not be read and were skipped (listed with the reason).`);
  if (o.suspect.length) warnings.push(`${o.suspect.length} image(s) look like placeholders, not photos: check them.`);
  if (small.length) warnings.push(`${small.length} image(s) are smaller than ${SMALL_SIDE} px on a side; they will be upscaled.`);
  if (o.tooFewToSplit.length) warnings.push(`Too few images to split for: ${o.tooFewToSplit.join(', ')} (all of them went to training).`);
  for (const c of o.emptyClasses) warnings.push(`Folder ${c} holds no files.`);
  const untrained = o.classes.filter((c) => !counts.train?.[c]);
  if (untrained.length) warnings.push(`No training images for ${untrained.map((c) => `"${c}"`).join(', ')}: the model cannot learn ${untrained.length === 1 ? 'it' : 'them'}. Add images to train/.`);
  const trainClasses = Object.values(counts.train ?? {}).filter((n) => n > 0).length;
  const valImages = Object.values(counts.val ?? {}).reduce((a, b) => a + b, 0);
  if (!valImages) warnings.push('No validation images: training will have nothing to validate on. Import with --val 0.2 or add a val/ folder.');
  return {
    snapshotId: o.snapshotId,
    name: o.name,
    root: o.root,
    layout: o.layout,
    classes: o.classes,
    counts,
    total: o.files.length,
    imbalanceRatio,
    skipped: o.skipped,
    duplicates,
    leaks,
    conflicts,
    small,
    suspect: o.suspect,
    tooFewToSplit: o.tooFewToSplit,
    warnings,
    usable: trainClasses >= 2 && valImages > 0,
  };
}
