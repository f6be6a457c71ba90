#!/usr/bin/env node
// The main job for a newcomer: check the machine, then fine-tune the default backbone on
// a small real image set (hymenoptera: ants vs bees) and print the run's accuracy.
// Offline it uses ../shared (models mirror + datasets) beside the checkout; on a machine
// with internet and no ../shared it downloads the backbone from its canonical location
// and the data set from the PyTorch tutorial's address into the home folder.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const shared = process.env.FINETUNE_SHARED ?? path.resolve(root, '../shared');
const bin = path.join(root, 'bin', 'finetune.js');
const globalArgs = [];
if (fs.existsSync(path.join(shared, 'models'))) globalArgs.push('--models-mirror', path.join(shared, 'models'));

function finetune(args) {
  console.log(`\n$ finetune ${[...globalArgs, ...args].join(' ')}`);
  const r = spawnSync(process.execPath, [bin, ...globalArgs, ...args], { stdio: 'inherit', cwd: root });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

async function dataDir() {
  const local = path.join(shared, 'datasets', 'hymenoptera');
  if (fs.existsSync(local)) return local;
  const target = path.join(os.tmpdir(), 'finetune-quickstart', 'hymenoptera_data');
  if (fs.existsSync(target)) return target;
  const url = 'https://download.pytorch.org/tutorial/hymenoptera_data.zip';
  console.log(`Downloading the hymenoptera data set from ${url} ...`);
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url} answered HTTP ${res.status}`);
  const zip = path.join(os.tmpdir(), 'finetune-quickstart', 'hymenoptera_data.zip');
  fs.mkdirSync(path.dirname(zip), { recursive: true });
  fs.writeFileSync(zip, Buffer.from(await res.arrayBuffer()));
  const unzip = spawnSync('unzip', ['-q', '-o', zip, '-d', path.dirname(zip)], { stdio: 'inherit' });
  if (unzip.status !== 0) throw new Error('Could not unzip the data set: install `unzip` and run again.');
  return target;
}

finetune(['doctor']);
const data = await dataDir();
const epochs = process.env.QUICKSTART_EPOCHS ?? '6';
finetune(['train', '--data', data, '--strategy', 'progressive', '--epochs', epochs, '--name', 'quickstart']);
finetune(['runs', 'list']);
