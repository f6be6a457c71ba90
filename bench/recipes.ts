/**
 * Whole-recipe benchmark against the PyTorch peer, in the same run: the `progressive`
 * recipe on hymenoptera (3 head epochs + 3 with the last blocks unfrozen, augmentation on,
 * seed 0), wall time, best validation accuracy and peak RSS, with the feature cache on and
 * off; plus the `auto` strategy's accuracy (the quality target: >= 0.93). Each of ours runs
 * as a user would: `finetune train` in a fresh home (import, decode, train, log).
 *
 * The host's speed drifts by up to 2x within minutes (the peer took 43 to 119 s on this
 * machine), so `--rounds N` times the peer and ours cached back to back N times; the
 * headline figures are each side's fastest round, and every round is kept.
 *
 *   node --import tsx bench/recipes.ts [--skip-peer] [--only progressive|auto] [--rounds 2]
 * Writes bench/results/recipes.json. Ours runs the build (out/, `npm run build`) when there is
 * one, as bin/finetune.js does: a build older than src/ is reported (`build.stale`). Ours also
 * runs with FINETUNE_TRACE=1, and its phase marks (seconds since start) land in `phases`.
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
const rounds = Math.max(1, Number(args.includes('--rounds') ? args[args.indexOf('--rounds') + 1] : 1));

interface Measured {
  wallSeconds: number;
  /** User + system CPU seconds of the whole process tree (less sensitive to others' load than wall time). */
  cpuSeconds: number | null;
  peakRssMB: number | null;
  /** FINETUNE_TRACE marks of ours: label -> seconds since the process started. */
  phases?: Record<string, number>;
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
    ? spawnSync('/usr/bin/time', ['-f', '%M %U %S', '-o', timeFile, cmd, ...argv], { cwd: root, env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 })
    : spawnSync(cmd, argv, { cwd: root, env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  const wallSeconds = (performance.now() - started) / 1000;
  let peakRssMB: number | null = null;
  let cpuSeconds: number | null = null;
  if (useTime && fs.existsSync(timeFile)) {
    const [rss, user, sys] = fs.readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
    peakRssMB = rss / 1024;
    cpuSeconds = user + sys;
    fs.rmSync(timeFile);
  }
  const phases: Record<string, number> = {};
  for (const m of (r.stderr ?? '').matchAll(/^\[trace ([\d.]+) \w+\] (.*)$/gm)) phases[m[2]] ??= Number(m[1]);
  const lines = (r.stdout ?? '').trim().split('\n');
  let json: Record<string, unknown> | null = null;
  try {
    json = JSON.parse(lines[lines.length - 1]);
  } catch {
    json = null;
  }
  return { wallSeconds, cpuSeconds, peakRssMB, ...(Object.keys(phases).length ? { phases } : {}), bestValAccuracy: null, json, exitCode: r.status, stderrTail: r.status === 0 ? undefined : (r.stderr ?? '').slice(-2000) };
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
  const m = measure(process.execPath, argv, { FINETUNE_TRACE: '1' });
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

/** Newest modification time under `dir` (ms), 0 when missing. */
function newest(dir: string): number {
  if (!fs.existsSync(dir)) return 0;
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) t = Math.max(t, fs.statSync(path.join(e.parentPath, e.name)).mtimeMs);
  }
  return t;
}

/** Which code ours runs: the build when present (as bin/finetune.js), and whether src/ changed since. */
function buildInfo(): { runs: 'build' | 'source'; stale: boolean } {
  const built = path.join(root, 'out', 'main', 'cli.js');
  if (!fs.existsSync(built) || process.env.FINETUNE_FROM_SOURCE) return { runs: 'source', stale: false };
  const stale = newest(path.join(root, 'src', 'main')) > fs.statSync(built).mtimeMs || newest(path.join(root, 'src', 'cli')) > fs.statSync(built).mtimeMs;
  if (stale) console.error('warning: out/ is older than src/: ours runs the old build (npm run build first).');
  return { runs: 'build', stale };
}

const out = path.join(root, 'bench', 'results', 'recipes.json');
// Keep the other recipe's last result when only one is run.
const previous: Record<string, unknown> = fs.existsSync(out) ? JSON.parse(fs.readFileSync(out, 'utf8')) : {};
const result: Record<string, unknown> = {
  ...previous,
  date: new Date().toISOString(),
  machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memoryGiB: Math.round(os.totalmem() / 2 ** 30) },
  loadBefore: os.loadavg(),
  build: buildInfo(),
};

if (!only || only === 'progressive') {
  const perRound: { peer: Measured | null; oursCached: Measured }[] = [];
  for (let r = 0; r < rounds; r++) perRound.push({ peer: args.includes('--skip-peer') ? null : peer(), oursCached: ours('progressive', null) });
  const fastest = (ms: Measured[]) => ms.reduce((a, b) => (b.wallSeconds < a.wallSeconds ? b : a));
  const peers = perRound.map((x) => x.peer).filter((x): x is Measured => !!x);
  const p = peers.length ? fastest(peers) : null;
  const cached = fastest(perRound.map((x) => x.oursCached));
  const uncached = ours('progressive', { featureCache: { enabled: false } });
  result.progressive = {
    rounds,
    perRound: perRound.map((x) => ({ peerWallSeconds: x.peer?.wallSeconds ?? null, oursCachedWallSeconds: x.oursCached.wallSeconds, ratio: x.peer ? x.oursCached.wallSeconds / x.peer.wallSeconds : null, oursBestValAccuracy: x.oursCached.bestValAccuracy })),
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
