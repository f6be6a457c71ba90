#!/usr/bin/env node
// `npm test`: builds the UI (the e2e tests serve it), then runs every test file under
// test/ with Node's test runner, one file at a time (2 cores; tests train real models).
// Pass file paths or folders to run a subset: `npm test -- test/unit/store`.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const args = process.argv.slice(2);
const targets = args.length ? args : ['test/unit', 'test/e2e'];

function collect(p, out) {
  const abs = path.resolve(root, p);
  if (!fs.existsSync(abs)) return;
  if (fs.statSync(abs).isDirectory()) {
    for (const e of fs.readdirSync(abs).sort()) collect(path.join(p, e), out);
  } else if (/\.test\.ts$/.test(abs)) out.push(abs);
}
const files = [];
for (const t of targets) collect(t, files);
if (!files.length) {
  console.error(`No test files found under ${targets.join(', ')}`);
  process.exit(1);
}
if (files.some((f) => f.includes(`${path.sep}e2e${path.sep}`)) && !process.env.FINETUNE_SKIP_BUILD) {
  const b = spawnSync(process.execPath, [path.join(root, 'node_modules/electron-vite/bin/electron-vite.js'), 'build'], { cwd: root, stdio: 'inherit' });
  if (b.status !== 0) process.exit(b.status ?? 1);
}
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...files], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
