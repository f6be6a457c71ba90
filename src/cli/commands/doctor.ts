/** `finetune doctor` and `finetune models`. */
import { parseArgs } from 'node:util';
import type { Booted } from '../../main/boot';

export async function doctorCommand(args: string[], app: Booted): Promise<number> {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean' } } });
  const r = await app.call('app:doctor', {});
  if (values.json) {
    console.log(JSON.stringify(r));
    return 0;
  }
  const rows: [string, string][] = [
    ['Finetune Studio', r.appVersion],
    ['Node', r.node],
    ['Platform', `${r.platform}, ${r.cpus} CPUs, ${r.memoryGiB} GiB`],
    ['Backend', `${r.backend.name} (${r.backend.package}), ${r.backend.threads || 'native'} thread(s)`],
    ...r.backend.skipped.map((s): [string, string] => [`  not ${s.name}`, s.reason]),
    ['Home', r.home],
    ['Models mirrors', r.modelsMirrors.length ? r.modelsMirrors.join(', ') : '(none: cache, then the canonical URLs)'],
    ['SQLite', r.sqlite],
    ['libvips', r.libvips],
  ];
  if (r.electron) rows.push(['Electron', r.electron]);
  const w = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) console.log(`${k.padEnd(w)}  ${v}`);
  return 0;
}

export async function modelsCommand(args: string[], app: Booted): Promise<number> {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean' } } });
  const models = await app.call('models:list', {});
  if (values.json) {
    console.log(JSON.stringify(models));
    return 0;
  }
  for (const m of models) {
    console.log(`${m.available ? '*' : ' '} ${m.id.padEnd(24)} ${m.title} (${m.sizeMB} MB; ${m.speedHint})`);
  }
  console.log('\n* = available offline (cache or a mirror folder)');
  return 0;
}
