import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { boot } from '../../../src/main/boot';
import type { EventEnvelope } from '../../../src/shared/contract';
import { AppError } from '../../../src/shared/errors';
import { repoRoot } from '../../helpers/paths';
import { formatReport } from '../../../src/cli/commands/import';
import { copyHymenopteraSubset, hymenopteraDir, realJpeg, tempDir, writeTree } from './fixtures';

async function pngSize(dataUrl: string, kind: 'png' | 'jpeg') {
  const prefix = `data:image/${kind};base64,`;
  assert.ok(dataUrl.startsWith(prefix), dataUrl.slice(0, 40));
  const m = await sharp(Buffer.from(dataUrl.slice(prefix.length), 'base64')).metadata();
  assert.equal(m.format, kind);
  return [m.width, m.height];
}

test('datasets verbs through the gate: import with progress, list, get, thumbnails, preview, cancel', async () => {
  const src = path.join(tempDir(), 'bugs & co');
  copyHymenopteraSubset(src, { train: 3, val: 2 });
  const app = await boot({ home: tempDir() });
  try {
    const events: EventEnvelope[] = [];
    const unsubscribe = app.ctx.events.subscribe((e) => events.push(e));
    const report = await app.call('datasets:import', { path: src, name: 'bugs' });
    unsubscribe();
    assert.equal(report.name, 'bugs');
    assert.deepEqual(report.counts, { train: { ants: 3, bees: 3 }, val: { ants: 2, bees: 2 } });
    const progress = events.filter((e) => e.event === 'datasets:progress').map((e) => e.payload as { done: number; total: number; phase: string });
    assert.ok(progress.length >= 1);
    assert.ok(progress.every((p) => p.phase === 'importing' && p.total === 10 && p.done <= 10));
    assert.equal(progress.at(-1)!.done, 10);

    const list = await app.call('datasets:list', {});
    assert.deepEqual(list.map((d) => d.id), [report.snapshotId]);
    assert.equal(list[0].total, 10);
    assert.deepEqual(list[0].options, { val: 0.2, test: 0, seed: 0 });
    const detail = await app.call('datasets:get', { id: report.snapshotId });
    assert.deepEqual(detail.report.counts, report.counts);
    assert.equal(app.store.getSnapshot(report.snapshotId)?.name, 'bugs');
    await assert.rejects(app.call('datasets:get', { id: 'ds-ffffffffffffffff' }), (e: AppError) => e.code === 'not_found');

    const thumbs = await app.call('datasets:thumbnails', { id: report.snapshotId, className: 'bees', split: 'train', limit: 2, size: 64 });
    assert.equal(thumbs.total, 3);
    assert.equal(thumbs.items.length, 2);
    for (const t of thumbs.items) {
      assert.equal(t.label, 'bees');
      assert.equal(t.split, 'train');
      assert.deepEqual(await pngSize(t.src, 'jpeg'), [64, 64]);
    }
    const rest = await app.call('datasets:thumbnails', { id: report.snapshotId, className: 'bees', split: 'train', offset: 2 });
    assert.equal(rest.items.length, 1);
    await assert.rejects(app.call('datasets:thumbnails', { id: report.snapshotId, className: 'wasps' }), (e: AppError) => e.code === 'not_found' && /Classes: ants, bees/.test(e.message));

    const preview = await app.call('datasets:preview', { id: report.snapshotId, index: thumbs.items[0].index, n: 3, seed: 2, augment: { hflip: true, rotation: 15, brightness: 0.3 } });
    assert.equal(preview.path, thumbs.items[0].path);
    assert.equal(preview.images.length, 3);
    for (const img of [preview.original, ...preview.images]) assert.deepEqual(await pngSize(img, 'png'), [224, 224]);
    assert.equal(new Set(preview.images).size, 3, 'each version differs');
    const again = await app.call('datasets:preview', { id: report.snapshotId, index: thumbs.items[0].index, n: 3, seed: 2, augment: { hflip: true, rotation: 15, brightness: 0.3 } });
    assert.deepEqual(again.images, preview.images);
    const dflt = await app.call('datasets:preview', { id: report.snapshotId });
    assert.equal(dflt.images.length, 8);

    // The gate checks arguments before the pipeline runs.
    await assert.rejects(app.call('datasets:import', { path: src, val: 2 }), (e: AppError) => e.code === 'bad_arguments' && /val/.test(e.message));
    await assert.rejects(app.call('datasets:preview', { id: report.snapshotId, augment: { sharpen: 1 } as never }), (e: AppError) => e.code === 'bad_arguments');

    // Cancel: the first progress event cancels a fresh import of the whole hymenoptera set.
    const stop = app.ctx.events.subscribe((e) => {
      if (e.event === 'datasets:progress') void app.call('datasets:cancelImport', {});
    });
    await assert.rejects(app.call('datasets:import', { path: hymenopteraDir }), (e: AppError) => e.code === 'cancelled');
    stop();
    assert.equal((await app.call('datasets:list', {})).length, 1, 'a cancelled import leaves no snapshot');
    assert.deepEqual(await app.call('datasets:cancelImport', {}), { cancelled: false });
  } finally {
    await app.close();
  }
});

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], { cwd: repoRoot, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

test('finetune import DIR --json prints one JSON object and exits 0; an unusable folder exits non-zero with a message', async () => {
  const home = tempDir();
  const src = path.join(tempDir(), 'petits insectes');
  copyHymenopteraSubset(src, { train: 2, val: 1 });
  fs.copyFileSync(path.join(src, 'train/ants', fs.readdirSync(path.join(src, 'train/ants'))[0]), path.join(src, 'val/ants/copy.jpg'));
  fs.writeFileSync(path.join(src, 'train/bees/empty.jpg'), '');
  const ok = await cli(['--home', home, 'import', src, '--json']);
  assert.equal(ok.code, 0, ok.stderr);
  const lines = ok.stdout.trim().split('\n');
  assert.equal(lines.length, 1);
  const r = JSON.parse(lines[0]);
  assert.match(r.snapshotId, /^ds-[0-9a-f]{16}$/);
  assert.deepEqual(r.classes, ['ants', 'bees']);
  assert.deepEqual(r.counts, { train: { ants: 2, bees: 2 }, val: { ants: 2, bees: 1 } });
  assert.deepEqual(r.skipped, [{ path: 'train/bees/empty.jpg', reason: 'empty file (0 bytes)' }]);
  assert.equal(r.duplicates.length, 1);
  assert.equal(r.leaks.length, 1);
  assert.ok(fs.existsSync(path.join(home, 'datasets', `${r.snapshotId}.json`)));

  // Without --json the same report is printed as text (formatted in-process: one spawn less).
  const text = formatReport(r);
  assert.match(text, new RegExp(`Snapshot ${r.snapshotId}`));
  assert.match(text, /ants\s+2\s+2\nbees\s+2\s+1/);
  assert.match(text, /Skipped \(1\):\n  train\/bees\/empty\.jpg: empty file/);
  assert.match(text, /Leaks \(same image in several splits\) \(1\):/);
  assert.match(text, /Usable for training\./);

  const loose = tempDir();
  writeTree(loose, { 'a.jpg': realJpeg('ants', 0) });
  const bad = await cli(['--home', home, 'import', loose, '--json']);
  assert.notEqual(bad.code, 0);
  assert.equal(bad.stdout, '');
  assert.match(bad.stderr, /^error: .* has no class folders\. Put each class's images in its own folder/);

  // No validation split: a report, but not usable for training.
  const noVal = await cli(['--home', home, 'import', path.join(src, 'train'), '--val', '0', '--json']);
  assert.notEqual(noVal.code, 0);
  const nv = JSON.parse(noVal.stdout);
  assert.equal(nv.usable, false);
  assert.ok(nv.warnings.some((w: string) => /No validation images/.test(w)));
});
