/**
 * `finetune runs ...`: list, show, compare, tag, note, delete and export runs of the log.
 * Calls the same services as the app; every argument set is validated by the contract.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { AppError } from '../../shared/errors';
import { runsVerbs, type Comparison, type RunDetail, type RunSummary } from '../../shared/contract/runs';
import type { AppContext } from '../../main/services/context';
import { createRunServices, type RunServices, type RunsVerbName } from '../../main/services/runs';
import type { Store } from '../../main/store';
import { bytes, clip, duration, num, pairs, table, when } from './runs-format';

export const RUNS_USAGE = `finetune runs list [--experiment E] [--tag T] [--status S] [--sort started|name|METRIC] [--asc|--desc] [--limit N] [--json]
finetune runs show RUN [--json]
finetune runs compare RUN RUN [RUN...] [--all] [--curves] [--json]
finetune runs tag RUN TAG [--remove]
finetune runs note RUN TEXT...
finetune runs delete RUN [--keep-files]
finetune runs export RUN... --format csv|json [--table metrics|runs] [--out FILE]
finetune runs experiments [--json]

RUN is a run id, a unique prefix of one, or a unique run name (see \`finetune runs list\`).`;

export interface Output {
  out(text: string): void;
  err(text: string): void;
}

const consoleOutput: Output = { out: (t) => console.log(t), err: (t) => console.error(t) };

/** Parse `argv` for one subcommand; unknown options become a bad_arguments error with the usage. */
function parse<O extends NonNullable<ParseArgsConfig['options']>>(sub: string, argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new AppError('bad_arguments', `runs ${sub}: ${(err as Error).message}\n\nUsage:\n${RUNS_USAGE}`);
  }
}

/** Validate with the contract's schema (defaults applied), then call the service. */
async function call<V extends RunsVerbName>(api: RunServices, name: V, raw: unknown): Promise<Awaited<ReturnType<RunServices[V]>>> {
  const parsed = runsVerbs[name].args.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(arguments)'}: ${i.message}`).join('; ');
    throw new AppError('bad_arguments', `Invalid arguments for ${name}: ${issues}.`);
  }
  const fn = api[name] as (a: unknown) => Promise<Awaited<ReturnType<RunServices[V]>>>;
  return fn(parsed.data);
}

function need(positionals: string[], n: number, what: string): void {
  if (positionals.length < n) throw new AppError('bad_arguments', `runs ${what}\n\nUsage:\n${RUNS_USAGE}`);
}

/** The metric columns a list shows: the sort key, else best val accuracy and loss, else the first two keys. */
function listMetricKeys(runs: RunSummary[], sort?: string): string[] {
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort();
  if (sort && keys.includes(sort)) return [sort];
  const preferred = [keys.find((k) => /^val.*acc/.test(k)), keys.find((k) => /^val.*loss/.test(k))].filter((k): k is string => !!k);
  return preferred.length ? preferred : keys.slice(0, 2);
}

function renderList(runs: RunSummary[], sort?: string): string {
  const keys = listMetricKeys(runs, sort);
  const header = ['ID', 'NAME', 'EXPERIMENT', 'STATUS', 'BACKBONE', 'STRATEGY', 'EPOCHS', ...keys.map((k) => `${k.toUpperCase()} (BEST)`), 'STARTED', 'TAGS'];
  const rows = runs.map((r) => [
    r.id,
    clip(r.name, 24),
    clip(r.experiment, 16),
    r.status,
    clip(r.backbone, 20),
    r.strategy,
    r.lastEpoch === null ? '-' : String(r.lastEpoch),
    ...keys.map((k) => num(r.metrics[k]?.best ?? r.metrics[k]?.final)),
    when(r.startedAt),
    r.tags.join(','),
  ]);
  return table(header, rows);
}

function renderShow(d: RunDetail): string {
  const parts: string[] = [];
  parts.push(
    pairs([
      ['Run', `${d.id}  (${d.name})`],
      ['Experiment', d.experiment],
      ['Status', d.status + (d.error ? `: ${d.error}` : '')],
      ['Backbone', d.backbone],
      ['Strategy', d.strategy],
      ['Backend', d.backend],
      ['Seed', String(d.seed)],
      ['Dataset snapshot', d.snapshotId ? `${d.snapshotId}${d.snapshot ? ` (${d.snapshot.name}, ${d.snapshot.root})` : ''}` : '-'],
      ['Started', when(d.startedAt)],
      ['Ended', `${when(d.endedAt)}${d.endedAt ? ` (${duration(d.startedAt, d.endedAt)})` : ''}`],
      ['Epochs logged', d.lastEpoch === null ? '0' : String(d.lastEpoch)],
      ['Last checkpoint', d.lastCheckpoint ? `${d.lastCheckpoint}${d.lastCheckpointEpoch !== null ? ` (epoch ${d.lastCheckpointEpoch})` : ''}` : '-'],
      ['App version', d.appVersion],
      ['Tags', d.tags.length ? d.tags.join(', ') : '-'],
    ]),
  );
  const metrics = Object.values(d.metrics).sort((a, b) => a.key.localeCompare(b.key));
  if (metrics.length) {
    parts.push(
      'Metrics\n' +
        table(
          ['KEY', 'FINAL', 'BEST', 'BEST EPOCH', 'POINTS'],
          metrics.map((m) => [m.key, num(m.final), num(m.best), m.bestEpoch === null ? '-' : String(m.bestEpoch), String(m.count)]),
        ),
    );
  }
  const params = Object.entries(d.params);
  if (params.length) parts.push('Params\n' + table(['PARAM', 'VALUE'], params.map(([k, v]) => [k, clip(v, 80)])));
  if (d.artifacts.length) {
    parts.push('Artifacts\n' + table(['KIND', 'SIZE', 'PATH'], d.artifacts.map((a) => [a.kind, bytes(a.size), a.path])));
  }
  if (d.evaluations.length) parts.push('Evaluations\n' + d.evaluations.map((e) => `  ${e.split} (${when(e.createdAt)})`).join('\n'));
  if (d.notes) parts.push(`Notes\n${d.notes}`);
  return parts.join('\n\n');
}

function renderCompare(c: Comparison, all: boolean, curves: boolean): string {
  const label = (i: number) => `#${i + 1}`;
  const parts: string[] = [];
  parts.push(
    table(
      ['', 'ID', 'NAME', 'STATUS', 'BACKBONE', 'SNAPSHOT', 'EPOCHS'],
      c.runs.map((r, i) => [label(i), r.id, clip(r.name, 24), r.status, clip(r.backbone, 20), r.snapshotId ?? '-', r.lastEpoch === null ? '-' : String(r.lastEpoch)]),
    ),
  );
  const runCols = c.runs.map((_, i) => label(i));
  if (c.params.length) {
    parts.push(
      `Params${all ? '' : ' that differ'}\n` +
        table(['PARAM', ...runCols], c.params.map((p) => [p.differs && all ? `${p.key} *` : p.key, ...p.values.map((v) => (v === null ? '-' : clip(v, 30)))])),
    );
  } else {
    parts.push('Params: all the same.');
  }
  if (!all && c.sameParams) parts.push(`${c.sameParams} param(s) are the same in all runs (--all shows them).`);
  if (c.metrics.length) {
    const rows = c.metrics.flatMap((m) => [
      [`${m.key} final`, ...m.final.map((v) => num(v))],
      ...(m.direction ? [[`${m.key} best`, ...m.best.map((v, i) => `${num(v)}${m.bestRun === i ? '*' : ''}`)]] : []),
    ]);
    parts.push('Metrics (* = best run)\n' + table(['METRIC', ...runCols], rows));
  }
  if (curves) {
    for (const cv of c.curves) {
      parts.push(`${cv.key} by epoch\n` + table(['EPOCH', ...runCols], cv.epochs.map((e, j) => [String(e), ...cv.values.map((row) => num(row[j]))])));
    }
  } else if (c.curves.length) {
    parts.push(`Per-epoch curves for ${c.curves.length} metric(s): --curves prints them, --json gives the values.`);
  }
  return parts.join('\n\n');
}

/** Runs `finetune runs <sub> ...`; resolves to the exit code. */
export async function runsCommand(argv: string[], ctx: AppContext, store: Store, io: Output = consoleOutput): Promise<number> {
  const api = createRunServices(ctx, store);
  const [sub, ...rest] = argv;
  const json = (v: unknown) => io.out(JSON.stringify(v, null, 2));
  switch (sub) {
    case 'list':
    case 'ls': {
      const { values } = parse(sub, rest, {
        experiment: { type: 'string' }, tag: { type: 'string' }, status: { type: 'string' }, sort: { type: 'string' },
        asc: { type: 'boolean' }, desc: { type: 'boolean' }, limit: { type: 'string' }, json: { type: 'boolean' },
      });
      const runs = await call(api, 'runs:list', {
        experiment: values.experiment, tag: values.tag, status: values.status, sort: values.sort,
        order: values.asc ? 'asc' : values.desc ? 'desc' : undefined,
        limit: values.limit === undefined ? undefined : Number(values.limit),
      });
      if (values.json) json(runs);
      else if (!runs.length) {
        const filtered = values.experiment || values.tag || values.status;
        io.out(filtered ? 'No runs match these filters.' : 'No runs yet. Start one in the app or with `finetune train`.');
      } else io.out(renderList(runs, values.sort));
      return 0;
    }
    case 'show': {
      const { values, positionals } = parse(sub, rest, { json: { type: 'boolean' } });
      need(positionals, 1, 'show needs a RUN.');
      const detail = await call(api, 'runs:get', { id: positionals[0] });
      if (values.json) json(detail);
      else io.out(renderShow(detail));
      return 0;
    }
    case 'compare': {
      const { values, positionals } = parse(sub, rest, { all: { type: 'boolean' }, curves: { type: 'boolean' }, json: { type: 'boolean' } });
      need(positionals, 2, 'compare needs at least two runs.');
      const c = await call(api, 'runs:compare', { ids: positionals, all: !!values.all });
      if (values.json) json(c);
      else io.out(renderCompare(c, !!values.all, !!values.curves));
      for (const w of c.warnings) io.err(`warning: ${w}`);
      return 0;
    }
    case 'tag': {
      const { values, positionals } = parse(sub, rest, { remove: { type: 'boolean' } });
      need(positionals, 2, 'tag needs a RUN and a TAG.');
      const r = await call(api, 'runs:tag', { id: positionals[0], tag: positionals.slice(1).join(' '), remove: !!values.remove });
      io.out(`${r.id}: tags ${r.tags.length ? r.tags.join(', ') : '(none)'}`);
      return 0;
    }
    case 'note': {
      const { positionals } = parse(sub, rest, {});
      need(positionals, 2, 'note needs a RUN and the TEXT.');
      const r = await call(api, 'runs:note', { id: positionals[0], text: positionals.slice(1).join(' ') });
      io.out(`${r.id}: notes saved.`);
      return 0;
    }
    case 'delete':
    case 'rm': {
      const { values, positionals } = parse(sub, rest, { 'keep-files': { type: 'boolean' } });
      need(positionals, 1, 'delete needs a RUN.');
      const r = await call(api, 'runs:delete', { id: positionals[0], keepFiles: !!values['keep-files'] });
      io.out(`Deleted run ${r.id}${r.removedFolder ? ` and its folder ${r.removedFolder}` : ''}.`);
      return 0;
    }
    case 'export': {
      const { values, positionals } = parse(sub, rest, { format: { type: 'string' }, table: { type: 'string' }, out: { type: 'string' } });
      need(positionals, 1, 'export needs at least one RUN.');
      const format = values.format ?? (values.out?.toLowerCase().endsWith('.json') ? 'json' : values.out ? 'csv' : undefined);
      if (!format) throw new AppError('bad_arguments', 'runs export needs --format csv or --format json (or an --out FILE ending in .csv/.json).');
      const r = await call(api, 'runs:export', { ids: positionals, format, table: values.table });
      if (values.out) {
        fs.mkdirSync(path.dirname(path.resolve(values.out)), { recursive: true });
        fs.writeFileSync(values.out, r.text);
        io.err(`Wrote ${r.rows} row(s) of ${r.runs} run(s) to ${values.out}.`);
      } else io.out(r.text.trimEnd());
      return 0;
    }
    case 'experiments': {
      const { values } = parse(sub, rest, { json: { type: 'boolean' } });
      const list = await call(api, 'experiments:list', {});
      if (values.json) json(list);
      else if (!list.length) io.out('No experiments yet.');
      else io.out(table(['NAME', 'RUNS', 'LAST RUN', 'ID'], list.map((e) => [e.name, String(e.runCount), when(e.lastRunAt), e.id])));
      return 0;
    }
    case undefined:
    case 'help':
    case '--help':
      io.out(RUNS_USAGE);
      return sub === undefined ? 2 : 0;
    default:
      throw new AppError('bad_arguments', `Unknown runs command "${sub}". Expected one of: list, show, compare, tag, note, delete, export, experiments.\n\nUsage:\n${RUNS_USAGE}`);
  }
}
