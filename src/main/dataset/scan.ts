/**
 * Find the labelled images of a folder, in one of three layouts: class folders
 * (`root/<class>/*`), pre-split folders (`root/{train,val,test}/<class>/*`, kept as given),
 * or a CSV of `path,label` (relative to the CSV). Read-only: nothing here writes to the
 * source. Symlinks are followed once (real paths are remembered, so loops end).
 */
import fs from 'node:fs';
import path from 'node:path';
import { AppError } from '../../shared/errors';

export type Split = 'train' | 'val' | 'test';
export type Layout = 'class-folders' | 'pre-split' | 'csv';

export interface FoundFile {
  /** Absolute path. */
  abs: string;
  /** Path relative to the dataset root (POSIX separators), stable across machines. */
  rel: string;
  label: string;
  /** Given by a pre-split layout or a CSV `split` column; otherwise decided later. */
  split?: Split;
}

export interface ScanResult {
  root: string;
  layout: Layout;
  files: FoundFile[];
  /** Class folders that exist but hold no files. */
  emptyClasses: string[];
  /** Files that could not be listed (permissions, broken links). */
  unreadable: { path: string; reason: string }[];
}

const SPLIT_NAMES: Record<string, Split> = { train: 'train', training: 'train', val: 'val', valid: 'val', validation: 'val', test: 'test', testing: 'test' };
const IGNORED = /^(\.|__MACOSX$|Thumbs\.db$|desktop\.ini$)/i;

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** All files under `dir`, following symlinks once per real directory. */
function walkFiles(dir: string, seen: Set<string>, unreadable: ScanResult['unreadable']): string[] {
  let real: string;
  try {
    real = fs.realpathSync(dir);
  } catch (err) {
    unreadable.push({ path: dir, reason: `cannot resolve (${(err as NodeJS.ErrnoException).code ?? 'error'})` });
    return [];
  }
  if (seen.has(real)) return [];
  seen.add(real);
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    unreadable.push({ path: dir, reason: `cannot list folder (${(err as NodeJS.ErrnoException).code ?? 'error'})` });
    return [];
  }
  const out: string[] = [];
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (IGNORED.test(e.name)) continue;
    const p = path.join(dir, e.name);
    let stat: fs.Stats;
    try {
      stat = fs.statSync(p);
    } catch (err) {
      unreadable.push({ path: p, reason: `broken link or unreadable (${(err as NodeJS.ErrnoException).code ?? 'error'})` });
      continue;
    }
    if (stat.isDirectory()) out.push(...walkFiles(p, seen, unreadable));
    else if (stat.isFile()) out.push(p);
  }
  return out;
}

function subdirs(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => !IGNORED.test(e.name) && (e.isDirectory() || (e.isSymbolicLink() && isDir(path.join(dir, e.name)))))
    .map((e) => e.name)
    .sort();
}

function rel(root: string, abs: string): string {
  return path.relative(root, abs).split(path.sep).join('/');
}

function scanClassFolders(root: string, base: string, split: Split | undefined, seen: Set<string>, result: ScanResult): void {
  for (const cls of subdirs(base)) {
    const files = walkFiles(path.join(base, cls), seen, result.unreadable);
    if (!files.length) result.emptyClasses.push(split ? `${split}/${cls}` : cls);
    for (const abs of files) result.files.push({ abs, rel: rel(root, abs), label: cls, split });
  }
}

/** Parse a CSV with a header naming `path` (or `file`/`filename`/`image`) and `label` (or `class`) columns, and optionally `split`. */
function scanCsv(csvPath: string, result: ScanResult): void {
  const text = fs.readFileSync(csvPath, 'utf8').replace(/^\uFEFF/, '');
  const lines = text.split(/\r?\n/);
  const parseLine = (line: string): string[] => {
    const cells: string[] = [];
    let cur = '';
    let quoted = false;
    for (let i = 0; i < line.length; i++) {
      const ch = line[i];
      if (quoted) {
        if (ch === '"' && line[i + 1] === '"') (cur += '"'), i++;
        else if (ch === '"') quoted = false;
        else cur += ch;
      } else if (ch === '"') quoted = true;
      else if (ch === ',') cells.push(cur.trim()), (cur = '');
      else cur += ch;
    }
    cells.push(cur.trim());
    return cells;
  };
  const header = parseLine(lines[0] ?? '').map((h) => h.toLowerCase());
  const pathCol = header.findIndex((h) => ['path', 'file', 'filename', 'image', 'filepath'].includes(h));
  const labelCol = header.findIndex((h) => ['label', 'class', 'category'].includes(h));
  const splitCol = header.indexOf('split');
  if (pathCol < 0 || labelCol < 0) {
    throw new AppError('bad_csv', `${csvPath}: the first line must be a header with a path column and a label column (e.g. "path,label"); got "${lines[0] ?? ''}".`);
  }
  const dir = path.dirname(csvPath);
  const bad: string[] = [];
  const missing: string[] = [];
  lines.slice(1).forEach((line, i) => {
    if (!line.trim()) return;
    const cells = parseLine(line);
    const p = cells[pathCol];
    const label = cells[labelCol];
    const splitRaw = splitCol >= 0 ? cells[splitCol]?.toLowerCase() : undefined;
    if (!p || !label) return void bad.push(`line ${i + 2}: "${line}" (needs a path and a label)`);
    const split = splitRaw ? SPLIT_NAMES[splitRaw] : undefined;
    if (splitRaw && !split) return void bad.push(`line ${i + 2}: unknown split "${splitRaw}" (use train, val or test)`);
    const abs = path.resolve(dir, p);
    if (!fs.existsSync(abs)) return void missing.push(`line ${i + 2}: ${p}`);
    result.files.push({ abs, rel: rel(dir, abs), label, split });
  });
  if (bad.length || missing.length) {
    const parts = [];
    if (bad.length) parts.push(`${bad.length} bad row(s): ${bad.slice(0, 5).join('; ')}${bad.length > 5 ? '; ...' : ''}`);
    if (missing.length) parts.push(`${missing.length} missing file(s): ${missing.slice(0, 5).join('; ')}${missing.length > 5 ? '; ...' : ''}`);
    throw new AppError('bad_csv', `${csvPath}: ${parts.join('. ')}. Fix or remove those rows (paths are relative to the CSV's folder) and import again.`);
  }
}

/** Detect the layout of `input` (a folder or a .csv file) and list its labelled files. */
export function scanDataset(input: string): ScanResult {
  const root = path.resolve(input);
  if (!fs.existsSync(root)) throw new AppError('not_found', `No such folder or file: ${root}. Check the path (spaces and non-ASCII characters are fine).`);
  const result: ScanResult = { root, layout: 'class-folders', files: [], emptyClasses: [], unreadable: [] };
  // The root (and split folders, below) count as seen: a link back up to them from inside a
  // class folder would otherwise walk every other class and file their images under this one.
  const seen = new Set<string>([fs.realpathSync(root)]);
  if (fs.statSync(root).isFile()) {
    if (!/\.csv$/i.test(root)) throw new AppError('bad_layout', `${root} is a file. Give a folder of class folders, a folder with train/val(/test) folders, or a CSV of path,label.`);
    result.layout = 'csv';
    result.root = path.dirname(root);
    scanCsv(root, result);
  } else {
    const dirs = subdirs(root);
    const splitDirs = dirs.filter((d) => SPLIT_NAMES[d.toLowerCase()]);
    if (splitDirs.length >= 2 && splitDirs.some((d) => SPLIT_NAMES[d.toLowerCase()] === 'train')) {
      result.layout = 'pre-split';
      for (const d of splitDirs) seen.add(fs.realpathSync(path.join(root, d)));
      for (const d of splitDirs) scanClassFolders(root, path.join(root, d), SPLIT_NAMES[d.toLowerCase()], seen, result);
    } else {
      const csvs = fs.readdirSync(root).filter((f) => /\.csv$/i.test(f));
      if (!dirs.length && csvs.length === 1) {
        result.layout = 'csv';
        scanCsv(path.join(root, csvs[0]), result);
      } else {
        if (!dirs.length) {
          throw new AppError('no_classes', `${root} has no class folders. Put each class's images in its own folder (${root}/<class>/image.jpg), or use train/ and val/ folders of class folders, or a CSV of path,label.`);
        }
        scanClassFolders(root, root, undefined, seen, result);
      }
    }
  }
  const classes = new Set(result.files.map((f) => f.label));
  if (classes.size === 0) throw new AppError('no_images', `No files found in the class folders of ${root}. Put each class's images in its folder (${root}/<class>/image.jpg) and import again.`);
  if (classes.size === 1) {
    const empty = result.emptyClasses.length ? ` (${result.emptyClasses.map((c) => `"${c}"`).join(', ')} hold${result.emptyClasses.length === 1 ? 's' : ''} no files)` : '';
    throw new AppError('single_class', `Only one class with images ("${[...classes][0]}") in ${root}${empty}. A classifier needs at least two classes: add a folder of images for each other class.`);
  }
  return result;
}
