/**
 * PyTorch reference figures for the kernel-level benches (issue 9): runs bench/peer_steps.py
 * (the peer's MobileNetV2 0.35 in torch: inference, head-only step, cached-suffix step, full
 * step; images/s) once per thread count, one after the other, so bench/steps.ts can report
 * our speed as ratios to PyTorch measured in the same run.
 *
 *   flock /tmp/bench.lock node --import tsx bench/peer-steps.ts [--tuned-malloc] [--seconds 3]
 * Writes bench/results/peer-steps.json. --tuned-malloc runs torch with glibc's allocator kept
 * from returning big buffers to the OS (TUNED_MALLOC): on this machine the default's page faults
 * cost PyTorch up to half its speed, so this is the stronger reference; the default is what a
 * user gets. From another bench: `runPeerSteps([1, 2])` (that bench
 * already holds the lock; do not take it again here, the child would wait on its parent).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const shared = process.env.FINETUNE_SHARED ?? path.resolve(here, '../../shared');
const SCRIPT = path.join(here, 'peer_steps.py');
/** Debian's python sees python3-torch; another python3 earlier on PATH may not. */
const PYTHON = process.env.FINETUNE_PEER_PYTHON ?? '/usr/bin/python3';
const APT_LINE = 'apt-get update && apt-get install -y python3-torch python3-torchvision python3-pil python3-numpy';

/** Keep large tensors' buffers in the heap instead of mmap/munmap (and page faults) per step. */
export const TUNED_MALLOC = { MALLOC_MMAP_MAX_: '0', MALLOC_TRIM_THRESHOLD_: '100000000000' };

const round2 = (x: number) => Math.round(x * 100) / 100;

/** One timed figure of peer_steps.py. */
export interface PeerFigure {
  images_per_s: number;
  images_per_s_median: number;
  batch: number;
  iterations: number;
  warmup_s: number[];
  seconds: number;
  cpu_s: number;
  cpu_util: number;
}

/** The JSON line peer_steps.py prints for one thread count. */
export interface PeerStepsRun {
  torch: string;
  threads: number;
  threads_requested: number;
  omp_wait_policy: string;
  malloc_env: Record<string, string>;
  loadavg_before: number[];
  loadavg_after: number[];
  wall_s: number;
  inference: { default: PeerFigure & { variant: string }; best: PeerFigure & { variant: string }; variants: Record<string, PeerFigure> };
  head_step: PeerFigure;
  suffix_step: PeerFigure & { input_shape: number[] };
  /** Keys bn_train_batch16, bn_train_batch32, bn_eval_batch16, bn_eval_batch32. */
  full_step: Record<string, PeerFigure>;
  [key: string]: unknown;
}

export interface PeerStepsReport {
  bench: 'peer-steps';
  date: string;
  machine: { cpus: number; node: string; loadAverageAtStart: number[]; loadAverageAtEnd: number[] };
  tunedMalloc: boolean;
  runs: PeerStepsRun[];
}

/** Why the peer cannot run here (no Debian python, or no torch in it), or null when it can. */
export function peerStepsUnavailable(): string | null {
  if (!fs.existsSync(PYTHON)) return `${PYTHON} not found; on Debian: ${APT_LINE}`;
  if (!fs.existsSync(path.join(shared, 'peer', 'mnv2.py'))) return `no PyTorch peer in ${path.join(shared, 'peer')}`;
  const probe = spawnSync(PYTHON, ['-c', 'import torch, torchvision'], { encoding: 'utf8' });
  if (probe.status !== 0) return `${PYTHON} cannot import torch/torchvision (${(probe.stderr ?? '').trim().split('\n').pop()}); install them with: ${APT_LINE}`;
  return null;
}

/**
 * Run peer_steps.py for each thread count in turn (never in parallel: they share the 2 cores)
 * and return the parsed results, or null, with the reason on stderr, when the peer cannot run.
 * The caller holds /tmp/bench.lock if it times anything of its own.
 */
export function runPeerSteps(threads: number[], options: { args?: string[]; tunedMalloc?: boolean } = {}): PeerStepsReport | null {
  const why = peerStepsUnavailable();
  if (why) {
    console.error(`peer-steps skipped: ${why}`);
    return null;
  }
  const loadAverageAtStart = os.loadavg().map(round2);
  const runs: PeerStepsRun[] = [];
  for (const t of threads) {
    const r = spawnSync(PYTHON, [SCRIPT, '--threads', String(t), ...(options.args ?? [])], {
      env: { ...process.env, PYTHONUNBUFFERED: '1', FINETUNE_SHARED: shared, ...(options.tunedMalloc ? TUNED_MALLOC : {}) },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      maxBuffer: 16 * 2 ** 20,
    });
    const last = (r.stdout ?? '').trim().split('\n').pop() ?? '';
    if (r.status !== 0 || !last.startsWith('{')) {
      console.error(`peer-steps skipped: ${SCRIPT} --threads ${t} exited with ${r.status ?? r.signal}`);
      return null;
    }
    runs.push(JSON.parse(last) as PeerStepsRun);
  }
  return {
    bench: 'peer-steps',
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, node: process.version, loadAverageAtStart, loadAverageAtEnd: os.loadavg().map(round2) },
    tunedMalloc: options.tunedMalloc ?? false,
    runs,
  };
}

/**
 * A process answering one JSON line per request line (duel mode: `peer_steps.py --serve`,
 * `bench/steps.ts --child --serve`). Its first line announces it is ready.
 */
export class LineServer {
  private readonly lines: AsyncIterator<string>;
  private constructor(private readonly child: ChildProcess) {
    this.lines = readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  }

  static async start(command: string, argv: string[], env: NodeJS.ProcessEnv): Promise<{ server: LineServer; hello: Record<string, unknown> }> {
    const child = spawn(command, argv, { env, stdio: ['pipe', 'pipe', 'inherit'] });
    const server = new LineServer(child);
    return { server, hello: await server.next() };
  }

  private async next(): Promise<Record<string, unknown>> {
    for (;;) {
      const r = await this.lines.next();
      if (r.done) throw new Error('duel: a benchmark process ended early (its stderr is above)');
      if (r.value.startsWith('{')) return JSON.parse(r.value) as Record<string, unknown>;
    }
  }

  /** Time `figure` for `seconds`: the process's JSON answer. */
  async ask(figure: string, seconds: number): Promise<Record<string, unknown>> {
    this.child.stdin!.write(`${figure} ${seconds}\n`);
    return this.next();
  }

  stop(): void {
    this.child.stdin!.end();
    this.child.kill();
  }
}

/** The peer in duel mode with `threads` threads, or null when it cannot run here. */
export async function startPeerServer(threads: number): Promise<LineServer | null> {
  const why = peerStepsUnavailable();
  if (why) {
    console.error(`duel skipped: ${why}`);
    return null;
  }
  const { server } = await LineServer.start(PYTHON, [SCRIPT, '--threads', String(threads), '--serve'], { ...process.env, PYTHONUNBUFFERED: '1', FINETUNE_SHARED: shared });
  return server;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const cli = process.argv.slice(2);
  const report = runPeerSteps([1, 2], { args: cli.filter((a) => a !== '--tuned-malloc'), tunedMalloc: cli.includes('--tuned-malloc') });
  if (!report) process.exit(1);
  const out = path.join(here, 'results', 'peer-steps.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  for (const r of report.runs) {
    const f = r.full_step;
    console.error(
      `threads ${r.threads}: inference ${r.inference.default.images_per_s} (best ${r.inference.best.images_per_s}, ${r.inference.best.variant}), ` +
        `head ${r.head_step.images_per_s}, suffix ${r.suffix_step.images_per_s}, full BN-train b16/b32 ${f.bn_train_batch16.images_per_s}/${f.bn_train_batch32.images_per_s}, ` +
        `BN-eval b16/b32 ${f.bn_eval_batch16.images_per_s}/${f.bn_eval_batch32.images_per_s} images/s; load ${r.loadavg_before.join(' ')} -> ${r.loadavg_after.join(' ')}`,
    );
  }
  console.log(JSON.stringify(report));
}
