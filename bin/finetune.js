#!/usr/bin/env node
// The `finetune` command. Runs the built CLI (npm run build); from a source checkout
// without a build it falls back to the TypeScript sources through tsx.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const built = path.join(root, 'out', 'main', 'cli.js');
let mod;
if (existsSync(built) && !process.env.FINETUNE_FROM_SOURCE) {
  mod = await import(pathToFileURL(built).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  mod = await import(pathToFileURL(path.join(root, 'src', 'cli', 'index.ts')).href);
}
process.exitCode = await mod.main(process.argv.slice(2));
