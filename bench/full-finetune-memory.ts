/**
 * Bounded memory (issue 9 item 5): full fine-tuning of MobileNetV2 1.0 at 224 px with an
 * effective batch of 32 must fit wasm's 32-bit heap through micro-batches chosen by the
 * engine, with RSS flat across epochs. Each alpha runs as a user would: `finetune train
 * --strategy full` in a fresh home on hymenoptera, under a pseudo-terminal (the CLI shows
 * the chosen micro-batch and the img/s only on a terminal) and /usr/bin/time (peak RSS),
 * while /proc is sampled for RSS and CPU time per epoch. MobileNetV2 0.35 (real ImageNet
 * weights) runs too, for comparison. A tape probe puts the engine's memory estimate next to
 * what one micro-batch really holds.
 *
 * Only the 0.35 weights exist offline, so the 1.0 backbone is synthesised from its Keras
 * topology with random weights (bench/lib/mobilenet-v2-synth.ts): memory and speed do not
 * depend on weight values; its accuracy means nothing.
 *
 *   flock /tmp/bench.lock node --import tsx bench/full-finetune-memory.ts [--epochs 3] [--only 1.0|0.35]
 * Writes bench/results/full-finetune-memory.json (the other alpha's last result is kept with --only).
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chooseMicroBatch, DEFAULT_TAPE_BUDGET, tapeBytesPerImage } from '../src/main/engine/memory';
import { loadBackbone } from '../src/main/engine/net/index';
import { planGroups } from '../src/main/engine/param-groups';
import { resolveConfig } from '../src/main/engine/strategies';
import { MINUS_ONE_TO_ONE } from '../src/shared/preprocessing';
import { KERAS_PARAMS, synthesiseMobilenetV2 } from './lib/mobilenet-v2-synth';
import { sampleProcess, findDescendant, type ProcSample } from './lib/proc-sampler';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const shared = process.env.FINETUNE_SHARED ?? path.resolve(root, '../shared');
const data = path.join(shared, 'datasets', 'hymenoptera');
const mirror = path.join(shared, 'models');
const template = path.join(mirror, 'teachable-machine-models/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top/model.json');
const args = process.argv.slice(2);
const opt = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const epochs = Number(opt('--epochs') ?? 3);
const only = opt('--only');
const BATCH = 32;
const MB = 2 ** 20;
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const imagesIn = (split: string) => fs.readdirSync(path.join(data, split)).reduce((n, c) => n + fs.readdirSync(path.join(data, split, c)).filter((f) => /\.(jpe?g|png)$/i.test(f)).length, 0);
const counts = { train: imagesIn('train'), val: imagesIn('val') };

interface EpochRow {
  epoch: number;
  /** The engine's training throughput for the epoch (last progress line), images/s. */
  trainImagesPerSec: number | null;
  /** The engine's epoch time, training plus validation, s. */
  epochSeconds: number;
  rssEndMB: number;
  rssMaxMB: number;
  /** CPU time of the whole process (all threads) during the epoch, s. */
  cpuSeconds: number;
}

/** Lines of a terminal transcript: \r-overwritten progress lines count, escapes removed. */
function terminalLines(chunk: string): string[] {
  // eslint-disable-next-line no-control-regex
  return chunk.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').split(/[\r\n]+/).map((l) => l.trim()).filter(Boolean);
}

async function runCli(alpha: string, model: string, expectedMicro: number) {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), `bench-ffm-home-${alpha}-`));
  const cli = [process.execPath, path.join(root, 'bin', 'finetune.js'), '--home', home, '--models-mirror', mirror, 'train', '--data', data, '--model', model, '--strategy', 'full', '--batch-size', String(BATCH), '--epochs', String(epochs), '--seed', '0'];
  const quoted = cli.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const timeFile = path.join(home, 'time.txt');
  const loadBefore = os.loadavg().map((x) => round(x, 2));
  const started = performance.now();
  const child = spawn('/usr/bin/time', ['-f', '%M', '-o', timeFile, 'script', '-qfec', quoted, '/dev/null'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let transcript = '';
  let node: number | null = null;
  let last: ProcSample | null = null;
  let microReported: number | null = null;
  let trainingStart: ProcSample | null = null;
  let epochStart: ProcSample | null = null;
  let epochMaxRss = 0;
  let ips: number | null = null;
  let summaryLine = '';
  const rows: EpochRow[] = [];
  const sample = () => {
    node ??= findDescendant(child.pid!, process.execPath);
    const s = node ? sampleProcess(node) : null;
    if (s) {
      last = s;
      epochMaxRss = Math.max(epochMaxRss, s.rssMB);
    }
    return s;
  };
  const timer = setInterval(sample, 200);
  const onLine = (line: string) => {
    const m = /\(micro-batch (\d+)\)/.exec(line);
    if (m) {
      microReported = Number(m[1]);
      trainingStart = sample() ?? last;
      epochStart = trainingStart;
      epochMaxRss = trainingStart?.rssMB ?? 0;
    }
    const p = /^epoch (\d+)\/\d+ .* (\d+)\/(\d+) loss .* ([\d.]+) img\/s/.exec(line);
    if (p && p[2] === p[3]) ips = Number(p[4]);
    const e = /^epoch (\d+): train loss .*\| ([\d.]+) s$/.exec(line);
    if (e) {
      const s = sample() ?? last;
      if (s) {
        rows.push({ epoch: Number(e[1]), trainImagesPerSec: ips, epochSeconds: Number(e[2]), rssEndMB: round(s.rssMB), rssMaxMB: round(epochMaxRss), cpuSeconds: round(s.cpuSeconds - (epochStart?.cpuSeconds ?? 0), 2) });
        epochStart = s;
        epochMaxRss = s.rssMB;
      }
      ips = null;
    }
    if (/^Run \S+ \S+ on /.test(line)) summaryLine = line;
  };
  let pending = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    transcript += chunk;
    const text = pending + chunk;
    const cut = Math.max(text.lastIndexOf('\n'), text.lastIndexOf('\r'));
    pending = text.slice(cut + 1);
    for (const l of terminalLines(text.slice(0, cut + 1))) onLine(l);
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const exitCode: number | null = await new Promise((resolve) => child.on('close', resolve));
  clearInterval(timer);
  for (const l of terminalLines(pending)) onLine(l);
  const wallSeconds = (performance.now() - started) / 1000;
  const peakRssMB = fs.existsSync(timeFile) ? Number(fs.readFileSync(timeFile, 'utf8').trim().split('\n').pop()) / 1024 : null;
  fs.rmSync(home, { recursive: true, force: true });
  const status = /^Run \S+ (\S+) on/.exec(summaryLine)?.[1] ?? null;
  const completed = exitCode === 0 && status === 'finished' && rows.length === epochs;
  const lastRow = rows[rows.length - 1];
  const growth = rows.length > 1 ? lastRow.rssEndMB - rows[0].rssEndMB : null;
  const rates = rows.map((r) => r.trainImagesPerSec).filter((x): x is number => x !== null);
  return {
    command: cli.slice(1).join(' ').replace(home, '<tmp-home>'),
    completed,
    exitCode,
    status,
    microBatch: { reported: microReported, expected: expectedMicro, accumulationSteps: Math.ceil(BATCH / (microReported ?? expectedMicro)) },
    peakRssMB: peakRssMB === null ? null : round(peakRssMB),
    peakRssMBSampled: last ? round((last as ProcSample).hwmMB) : null,
    rssAtTrainingStartMB: trainingStart ? round((trainingStart as ProcSample).rssMB) : null,
    imagesPerSec: rates.length ? round(rates.reduce((a, b) => a + b, 0) / rates.length, 2) : null,
    cpuMsPerImageEpoch: lastRow ? round((lastRow.cpuSeconds * 1000) / (counts.train + counts.val), 0) : null,
    epochs: rows,
    rssGrowthAfterFirstEpochMB: growth === null ? null : round(growth),
    rssFlat: growth === null ? null : Math.abs(growth) <= Math.max(32, 0.05 * lastRow.rssEndMB),
    wallSeconds: round(wallSeconds),
    loadBefore,
    loadAfter: os.loadavg().map((x) => round(x, 2)),
    ...(completed ? {} : { outputTail: terminalLines(transcript).slice(-15).join('\n'), stderrTail: stderr.slice(-2000) }),
  };
}

function tapeProbe(modelJson: string, micro: number): Record<string, unknown> | null {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(root, 'bench', 'lib', 'tape-probe.ts'), modelJson, String(micro)], { cwd: root, encoding: 'utf8', maxBuffer: 16 * MB });
  const line = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  try {
    const j = JSON.parse(line) as Record<string, number>;
    return Object.fromEntries(Object.entries(j).map(([k, v]) => [k, typeof v === 'number' ? round(v) : v]));
  } catch {
    return { error: (r.stderr ?? '').slice(-500) };
  }
}

async function expectedMicroBatch(modelJson: string): Promise<{ micro: number; estimateMBPerImage: number }> {
  const net = await loadBackbone(modelJson, { id: 'bench', preprocessing: { size: 224, cropFraction: 0.875, trainCrop: 'random-resized-crop', scaling: MINUS_ONE_TO_ONE, channels: 3 } });
  try {
    // The same call the trainer makes for `--strategy full --batch-size 32`.
    const config = resolveConfig('full', { batchSize: BATCH });
    const plan = planGroups(config, net.groups.map((g) => g.name));
    return { micro: chooseMicroBatch(net, plan.earliestTrainable, BATCH, config.microBatch), estimateMBPerImage: round(tapeBytesPerImage(net, plan.earliestTrainable) / MB) };
  } finally {
    net.dispose();
  }
}

const synthDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bench-ffm-models-')), 'mobilenet_v2_1.0_224_synthetic');
const synth = await synthesiseMobilenetV2(template, 1.0, synthDir);
if (synth.params !== KERAS_PARAMS['1.0']) throw new Error(`Synthesised MobileNetV2 1.0 has ${synth.params} parameters; Keras has ${KERAS_PARAMS['1.0']}.`);

const alphas = [
  { alpha: '1.0', model: synthDir, modelJson: synth.modelJson, weights: 'synthetic (random Glorot convs, BatchNorm identity), not ImageNet', params: synth.params },
  { alpha: '0.35', model: 'mobilenet_v2_0.35_224', modelJson: template, weights: 'ImageNet (the shipped 0.35 no-top)', params: KERAS_PARAMS['0.35'] },
].filter((a) => !only || a.alpha === only);

const out = path.join(root, 'bench', 'results', 'full-finetune-memory.json');
const previous = fs.existsSync(out) ? JSON.parse(fs.readFileSync(out, 'utf8')) : {};
const runs: Record<string, unknown> = { ...(previous.runs ?? {}) };
for (const a of alphas) {
  const { micro, estimateMBPerImage } = await expectedMicroBatch(a.modelJson);
  console.log(`MobileNetV2 ${a.alpha}: expected micro-batch ${micro} (estimate ${estimateMBPerImage} MB/image); training ${epochs} epochs...`);
  const run = await runCli(a.alpha, a.model, micro);
  const probe = tapeProbe(a.modelJson, micro);
  runs[a.alpha] = { alpha: Number(a.alpha), backbone: a.model === synthDir ? '<tmp>/mobilenet_v2_1.0_224_synthetic (user folder)' : a.model, weights: a.weights, params: a.params, tapeEstimateMBPerImage: estimateMBPerImage, ...run, tapeProbe: probe };
  console.log(JSON.stringify(runs[a.alpha], null, 1));
}
fs.rmSync(path.dirname(synthDir), { recursive: true, force: true });

const git = (...a: string[]) => spawnSync('git', a, { cwd: root, encoding: 'utf8' }).stdout.replace(/\s+$/, '');
const result = {
  date: new Date().toISOString(),
  machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memoryGiB: Math.round(os.totalmem() / 2 ** 30) },
  git: { head: git('rev-parse', '--short', 'HEAD'), dirtyEngine: git('status', '--porcelain', '--', 'src').split('\n').filter(Boolean) },
  task: `finetune train --strategy full, batch ${BATCH} (micro-batches + gradient accumulation chosen by the engine), 224 px, ${epochs} epochs, hymenoptera (${counts.train} train / ${counts.val} val), seed 0, wasm backend`,
  tapeBudgetMB: DEFAULT_TAPE_BUDGET / MB,
  weightsNote:
    'Only the MobileNetV2 0.35 weights are available offline (no internet), so the 1.0 backbone is synthesised: the Keras MobileNetV2(alpha=1.0, include_top=False) topology (same layer names, filters by _make_divisible, 2,257,984 parameters as in Keras) with random weights built by tfjs-layers. Memory and speed do not depend on weight values; its accuracy is meaningless.',
  reportingNote:
    'The micro-batch is read from the CLI\'s terminal status line ("Training N epochs, batch 32 (micro-batch M)"), which also carries the per-epoch throughput, hence the pseudo-terminal; the --json summary (microBatch) and the run\'s log (param runtime.micro_batch) record it as well. "expected" is chooseMicroBatch() called as the trainer calls it.',
  method: 'peakRssMB: /usr/bin/time %M of the whole process tree (node + engine worker thread + wasm threads share one process); per-epoch RSS and CPU time sampled from /proc every 200 ms (rssAtTrainingStartMB when the "Training ..." status line arrives, after import, decode and feeder set-up; the first micro-batch may already be running); imagesPerSec: the engine\'s training throughput at the end of each epoch (progress line), averaged over epochs; cpuMsPerImageEpoch: CPU time of the last epoch (training plus validation) per image seen. tapeProbe: one full-fine-tuning step of one micro-batch in a fresh process (bench/lib/tape-probe.ts); measuredMBPerImage is tf.profile peak bytes (an upper bound: views such as reshapes count again), wasmHeapMB the wasm Memory afterwards, the number that must stay below the 4096 MB of a 32-bit heap.',
  runs,
};
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
console.log(`Wrote ${path.relative(root, out)}`);
