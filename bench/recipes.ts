/**
 * Whole-recipe benchmark against the PyTorch peer, in the same run: the `progressive`
 * recipe on hymenoptera (3 head epochs + 3 with the last blocks unfrozen, augmentation on,
 * seed 0), wall time, best validation accuracy and peak RSS, with the feature cache on and
 * off; plus the `auto` strategy's accuracy (the quality target: >= 0.93). Each of ours runs
 * as a user would: `finetune train` in a fresh home (import, decode, train, log).
 *
 *   node --import tsx bench/recipes.ts [--skip-peer] [--only progressive|auto]
 * Writes bench/results/recipes.json.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const shared = process.env.FINETUNE_SHARED ?? path.resolve(root, '../shared');
const data = path.join(shared, 'datasets', 'hymenoptera');
const args = process.argv.slice(2);
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : null;

interface Measured {
  wallSeconds: number;
  peakRssMB: number | null;
  bestValAccuracy: number | null;
  json: Record<string, unknown> | null;
  exitCode: number | null;
  stderrTail?: string;
}

/** Run a command under /usr/bin/time for its peak RSS; parse the last JSON line of stdout. */
function measure(cmd: string, argv: string[], env: Record<string, string> = {}): Measured {
  const timeFile = path.join(os.tmpdir(), `bench-time-${process.pid}-${Date.now()}`);
  const started = performance.now();
  const useTime = fs.existsSync('/usr/bin/time');
  const r = useTime
    ? spawnSync('/usr/bin/time', ['-f', '%M', '-o', timeFile, cmd, ...argv], { cwd: root, env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 })
    : spawnSync(cmd, argv, { cwd: root, env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  const wallSeconds = (performance.now() - started) / 1000;
  let peakRssMB: number | null = null;
  if (useTime && fs.existsSync(timeFile)) {
    peakRssMB = Number(fs.readFileSync(timeFile, 'utf8').trim().split('\n').pop()) / 1024;
    fs.rmSync(timeFile);
  }
  const lines = (r.stdout ?? '').trim().split('\n');
  let json: Record<string, unknown> | null = null;
  try {
    json = JSON.parse(lines[lines.length - 1]);
  } catch {
    json = null;
  }
  return { wallSeconds, peakRssMB, bestValAccuracy: null, json, exitCode: r.status, stderrTail: r.status === 0 ? undefined : (r.stderr ?? '').slice(-2000) };
}

function ours(strategy: string, extraConfig: Record<string, unknown> | null, epochs?: number): Measured {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-recipes-home-'));
  const argv = [path.join(root, 'bin', 'finetune.js'), '--home', home, '--models-mirror', path.join(shared, 'models'), 'train', '--data', data, '--strategy', strategy, '--seed', '0', '--json'];
  if (epochs) argv.push('--epochs', String(epochs));
  if (extraConfig) {
    const cfg = path.join(home, 'config.json');
    fs.writeFileSync(cfg, JSON.stringify(extraConfig));
    argv.push('--config', cfg);
  }
  const m = measure(process.execPath, argv);
  const best = (m.json?.best as { val_accuracy?: number } | null)?.val_accuracy ?? null;
  fs.rmSync(home, { recursive: true, force: true });
  return { ...m, bestValAccuracy: best };
}

function peer(): Measured | null {
  const python = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const script = path.join(shared, 'peer', 'peer.py');
  if (!fs.existsSync(script)) return null;
  const m = measure(python, [script, '--data', data, '--recipe', 'progressive', '--head-epochs', '3', '--ft-epochs', '3', '--threads', '2', '--seed', '0'], { PYTHONUNBUFFERED: '1' });
  return { ...m, bestValAccuracy: (m.json?.best_val_acc as number | undefined) ?? null };
}

const out = path.join(root, 'bench', 'results', 'recipes.json');
// Keep the other recipe's last result when only one is run.
const previous: Record<string, unknown> = fs.existsSync(out) ? JSON.parse(fs.readFileSync(out, 'utf8')) : {};
const result: Record<string, unknown> = {
  ...previous,
  date: new Date().toISOString(),
  machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memoryGiB: Math.round(os.totalmem() / 2 ** 30) },
  loadBefore: os.loadavg(),
};

if (!only || only === 'progressive') {
  const p = args.includes('--skip-peer') ? null : peer();
  const cached = ours('progressive', null);
  const uncached = ours('progressive', { featureCache: { enabled: false } });
  result.progressive = {
    peer: p,
    oursCached: cached,
    oursUncached: uncached,
    ratioWallCachedToPeer: p ? cached.wallSeconds / p.wallSeconds : null,
    ratioWallUncachedToPeer: p ? uncached.wallSeconds / p.wallSeconds : null,
    accuracyDeltaCached: p?.bestValAccuracy != null && cached.bestValAccuracy != null ? cached.bestValAccuracy - p.bestValAccuracy : null,
    targets: { wallRatioAtMost: 0.25, accuracyNoWorseThanPeerMinus: 0.01 },
  };
}
if (!only || only === 'auto') {
  const auto = ours('auto', null);
  result.auto = { ...auto, target: 0.93, meetsTarget: auto.bestValAccuracy != null && auto.bestValAccuracy >= 0.93 };
}
result.loadAfter = os.loadavg();
fs.mkdirSync(path.join(root, 'bench', 'results'), { recursive: true });
fs.writeFileSync(out, JSON.stringify(result, null, 2));
console.log(JSON.stringify(result, (k, v) => (k === 'json' ? undefined : v), 2));
console.log(`written to ${out}`);
