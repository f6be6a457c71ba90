/** The `app:*` and `models:*` verbs: machine report (doctor) and the known backbones. */
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import type { BackboneInfo, DoctorReport } from '../../shared/contract';
import type { AppContext } from './context';
import { AppError } from '../../shared/errors';
import { BACKBONES } from '../engine/backbones/registry';
import { isCompleteModelFolder } from '../engine/backbones/resolve';

const nodeRequire = createRequire(import.meta.url);

function sqliteVersion(): string {
  try {
    const Database = nodeRequire('better-sqlite3');
    const db = new Database(':memory:');
    const v = (db.prepare('select sqlite_version() as v').get() as { v: string }).v;
    db.close();
    return v;
  } catch (err) {
    return `unavailable (${(err as Error).message.split('\n')[0]})`;
  }
}

function libvipsVersion(): string {
  try {
    return nodeRequire('sharp').versions.vips as string;
  } catch (err) {
    return `unavailable (${(err as Error).message.split('\n')[0]})`;
  }
}

/** Where a backbone can be found right now without a download, or null. */
export function localModelJson(ctx: AppContext, relDir: string): string | null {
  const bases = [ctx.paths.modelsCache, ...ctx.mirrors.filter((m) => !/^https?:/i.test(m))];
  for (const base of bases) {
    const p = path.join(base, ...relDir.split('/'), 'model.json');
    if (fs.existsSync(p) && isCompleteModelFolder(p)) return p;
  }
  return null;
}

/** Everything a bug report needs: versions, backend choice and why, folders. */
export async function doctor(ctx: AppContext): Promise<DoctorReport> {
  const { initBackend } = await import('../engine/backend');
  const backend = await initBackend();
  return {
    appVersion: ctx.appVersion,
    node: process.versions.node,
    platform: `${process.platform}-${process.arch}`,
    cpus: os.cpus().length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    backend,
    home: ctx.paths.home,
    modelsMirrors: ctx.mirrors,
    sqlite: sqliteVersion(),
    libvips: libvipsVersion(),
    electron: ctx.electronVersion,
  };
}

export function listModels(ctx: AppContext): BackboneInfo[] {
  return BACKBONES.map((b) => ({
    id: b.id,
    title: b.title,
    path: b.relDir,
    inputSize: b.preprocessing.size,
    params: b.params,
    sizeMB: b.sizeMB,
    speedHint: b.speedHint,
    available: localModelJson(ctx, b.relDir) !== null,
  }));
}

export function createAppServices(ctx: AppContext) {
  return {
    'app:doctor': async () => doctor(ctx),
    'models:list': async () => listModels(ctx),
    'app:pickFolder': async ({ title }: { title?: string }) => {
      if (!ctx.pickFolder) throw new AppError('unsupported', 'Picking a folder needs the desktop app. Type or paste the folder path instead.');
      return { path: await ctx.pickFolder(title) };
    },
  };
}
