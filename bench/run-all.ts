/**
 * `npm run bench`: every benchmark, one after the other (they share 2 cores, never run them
 * in parallel), each writing its JSON under bench/results/. The recipe benchmark runs the
 * PyTorch peer (../shared/peer; needs Debian's python3-torch) in the same run.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const benches = ['import-throughput.ts', 'store.ts', 'steps.ts', 'sparse-grads.ts', 'recipes.ts', 'full-finetune-memory.ts'];
let failed = 0;
for (const b of benches) {
  console.log(`\n== bench/${b}`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(here, b)], { stdio: 'inherit', cwd: path.join(here, '..') });
  if (r.status !== 0) {
    failed++;
    console.error(`bench/${b} exited with ${r.status}`);
  }
}
process.exit(failed ? 1 : 0);
