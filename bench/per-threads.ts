/**
 * Shared driver of the kernel-level benches: run this same script as a child once per wasm
 * thread count (the pool size is fixed when the backend starts), collect each child's last
 * JSON line, and write one report with the machine's load.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

export function runPerThreadCount(script: string, name: string, meta: Record<string, unknown>, threads = [1, 2]): void {
  const loadAtStart = os.loadavg().map((x) => round(x, 2));
  const runs = [];
  for (const t of threads) {
    const out = execFileSync(process.execPath, [...process.execArgv, script, '--child', ...process.argv.slice(2)], {
      env: { ...process.env, FINETUNE_THREADS: String(t), FINETUNE_BACKEND: 'wasm' },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const result = JSON.parse(out.trim().split('\n').pop()!);
    console.error(`threads ${t}: ${JSON.stringify(result)}`);
    runs.push({ threadsRequested: t, ...result });
  }
  const report = {
    bench: name,
    date: new Date().toISOString(),
    ...meta,
    machine: { cpus: os.cpus().length, node: process.version, loadAverageAtStart: loadAtStart, loadAverageAtEnd: os.loadavg().map((x) => round(x, 2)) },
    runs,
  };
  const dir = path.resolve(path.dirname(script), 'results');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, `${name}.json`), `${JSON.stringify(report, null, 2)}\n`);
  console.log(JSON.stringify(report));
}
