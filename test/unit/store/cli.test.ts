import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Api, EventEnvelope } from '../../../src/shared/contract';
import { AppError } from '../../../src/shared/errors';
import { invokeVerb } from '../../../src/main/services/gate';
import { createRunServices } from '../../../src/main/services/runs';
import { runsCommand, type Output } from '../../../src/cli/commands/runs';
import { baseConfig, freshStore, runWithEpochs, tempDir, testContext } from './helpers';

function setup() {
  const home = tempDir('cli');
  const { store } = freshStore(home);
  const ctx = testContext(home);
  const a = runWithEpochs(store, { epochs: 3, name: 'baseline', snapshotId: 'snap-a' });
  const b = runWithEpochs(store, { epochs: 4, name: 'higher lr', snapshotId: 'snap-b', config: { ...baseConfig, optimizer: { ...baseConfig.optimizer, lr: 0.01 } }, offset: 0.05 });
  store.setStatus(a, 'finished');
  store.setStatus(b, 'finished');
  return { home, store, ctx, a, b };
}

async function cli(argv: string[], s: ReturnType<typeof setup>) {
  let out = '';
  let err = '';
  const io: Output = { out: (t) => (out += `${t}\n`), err: (t) => (err += `${t}\n`) };
  const code = await runsCommand(argv, s.ctx, s.store, io);
  return { code, out, err };
}

test('finetune runs list / show print readable tables and JSON', async () => {
  const s = setup();
  const list = await cli(['list'], s);
  assert.equal(list.code, 0);
  const lines = list.out.trimEnd().split('\n');
  assert.match(lines[0], /^ID\s+NAME\s+EXPERIMENT\s+STATUS.*VAL_ACCURACY \(BEST\)\s+VAL_LOSS \(BEST\)/);
  assert.ok(lines[1].startsWith(s.b) && lines[2].startsWith(s.a), 'newest first');
  assert.match(lines[1], /higher lr\s+Default\s+finished.*0\.67/);
  const sorted = JSON.parse((await cli(['list', '--sort', 'val_loss', '--json'], s)).out);
  assert.deepEqual(sorted.map((r: { id: string }) => r.id), [s.b, s.a]);
  assert.match((await cli(['list', '--tag', 'nothing'], s)).out, /No runs match/);

  const show = await cli(['show', s.a.slice(0, -1)], s);
  assert.match(show.out, new RegExp(`Run\\s+${s.a}\\s+\\(baseline\\)`));
  assert.match(show.out, /Dataset snapshot\s+snap-a/);
  assert.match(show.out, /val_accuracy\s+0\.58\s+0\.58\s+2\s+3/);
  assert.match(show.out, /optimizer\.lr\s+0\.001/);
  const detail = JSON.parse((await cli(['show', 'baseline', '--json'], s)).out);
  assert.equal(detail.id, s.a);
  assert.equal(detail.epochs.val_loss.length, 3);
  s.store.close();
});

test('finetune runs compare shows differing params, metrics with the best marked, and the snapshot warning', async () => {
  const s = setup();
  const r = await cli(['compare', s.a, s.b], s);
  assert.equal(r.code, 0);
  assert.match(r.out, /Params that differ\nPARAM\s+#1\s+#2\noptimizer\.lr\s+0\.001\s+0\.01\n/);
  assert.match(r.out, /7 param\(s\) are the same/);
  assert.match(r.out, /val_accuracy best\s+0\.58\s+0\.67\*/);
  assert.match(r.err, /warning: The runs used different dataset snapshots/);
  const curves = await cli(['compare', s.a, s.b, '--curves', '--all'], s);
  assert.match(curves.out, /val_loss by epoch\nEPOCH\s+#1\s+#2\n\s+0\s+1\.5\s+1\.55\n/);
  assert.match(curves.out, /\n\s+3\s+-\s+1\.25\n/);
  assert.match(curves.out, /epochs\s+10\s+10/);
  const json = JSON.parse((await cli(['compare', s.a, s.b, '--json'], s)).out);
  assert.equal(json.params.length, 1);
  await assert.rejects(cli(['compare', s.a], s), (e: AppError) => e.code === 'bad_arguments' && /at least two/.test(e.message));
  s.store.close();
});

test('finetune runs tag / note / export / delete change the log and announce it', async () => {
  const s = setup();
  const events: EventEnvelope[] = [];
  s.ctx.events.subscribe((e) => events.push(e));
  assert.match((await cli(['tag', 'baseline', 'keeper'], s)).out, /tags keeper/);
  assert.match((await cli(['tag', 'baseline', 'keeper', '--remove'], s)).out, /tags \(none\)/);
  await cli(['note', s.a, 'looks', 'good'], s);
  assert.equal(s.store.getRun(s.a).notes, 'looks good');

  const file = path.join(s.home, 'out', 'runs.csv');
  const exp = await cli(['export', s.a, s.b, '--format', 'csv', '--out', file], s);
  assert.match(exp.err, /Wrote 28 row\(s\) of 2 run\(s\)/);
  assert.equal(fs.readFileSync(file, 'utf8').split('\n')[0], 'run_id,run_name,experiment,key,step,epoch,value,time');
  const json = JSON.parse((await cli(['export', s.a, '--format', 'json', '--table', 'runs'], s)).out);
  assert.equal(json.runs[0].id, s.a);

  const folder = path.join(s.ctx.paths.runs, s.a);
  fs.mkdirSync(path.join(folder, 'checkpoints'), { recursive: true });
  fs.writeFileSync(path.join(folder, 'checkpoints', 'last.bin'), 'x');
  const del = await cli(['delete', s.a], s);
  assert.match(del.out, /Deleted run .* and its folder/);
  assert.equal(fs.existsSync(folder), false);
  assert.deepEqual(events.filter((e) => e.event === 'runs:changed').map((e) => (e.payload as { change: string }).change), ['tags', 'tags', 'notes', 'deleted']);
  await assert.rejects(cli(['show', s.a], s), (e: AppError) => e.code === 'not_found');
  s.store.close();
});

test('bad CLI input and bad verb arguments give bad_arguments with what to do', async () => {
  const s = setup();
  await assert.rejects(cli(['list', '--bogus'], s), (e: AppError) => e.code === 'bad_arguments' && /--bogus/.test(e.message) && /Usage/.test(e.message));
  await assert.rejects(cli(['frobnicate'], s), (e: AppError) => e.code === 'bad_arguments' && /Expected one of: list, show/.test(e.message));
  await assert.rejects(cli(['list', '--status', 'done'], s), (e: AppError) => e.code === 'bad_arguments' && /status/.test(e.message));
  await assert.rejects(cli(['export', s.a], s), (e: AppError) => /--format csv/.test(e.message));
  assert.equal((await cli([], s)).code, 2);
  const api = createRunServices(s.ctx, s.store) as unknown as Api;
  const bad = await invokeVerb(api, 'runs:compare', { ids: [s.a] });
  assert.equal(bad.ok, false);
  const missing = await invokeVerb(api, 'runs:get', { id: 'r-nope' });
  assert.ok(!missing.ok && missing.error.code === 'not_found');
  const ok = await invokeVerb(api, 'experiments:list', {});
  assert.ok(ok.ok);
  s.store.close();
});
