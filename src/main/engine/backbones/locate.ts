/**
 * Turn what a user typed as a backbone (a known id, or a folder with a Keras LayersModel)
 * into a model.json on disk plus its preprocessing. Known ids resolve through the cache and
 * mirrors; a user folder may carry a preprocessing.json, otherwise its input size is read
 * from the model and MobileNet-style [-1, 1] scaling is assumed (and reported).
 */
import fs from 'node:fs';
import path from 'node:path';
import { AppError } from '../../../shared/errors';
import { MINUS_ONE_TO_ONE, type Preprocessing } from '../../../shared/preprocessing';
import { BACKBONES, findBackbone } from './registry';
import { resolveModelFolder } from './resolve';

export interface LocatedBackbone {
  id: string;
  modelJson: string;
  preprocessing: Preprocessing;
  /** Where it came from (cache, a mirror, the canonical URL, or the user folder). */
  source: string;
  notes: string[];
}

function inputSizeOf(modelJson: string): number | null {
  try {
    const topo = JSON.parse(fs.readFileSync(modelJson, 'utf8')).modelTopology;
    const layers = topo?.model_config?.config?.layers ?? topo?.config?.layers ?? [];
    const input = layers.find((l: { class_name: string }) => l.class_name === 'InputLayer');
    const shape: (number | null)[] | undefined = input?.config?.batch_input_shape ?? input?.config?.batch_shape;
    return shape && typeof shape[1] === 'number' ? shape[1] : null;
  } catch {
    return null;
  }
}

function userFolderPreprocessing(dir: string, modelJson: string, notes: string[]): Preprocessing {
  const file = path.join(dir, 'preprocessing.json');
  if (fs.existsSync(file)) {
    const p = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<Preprocessing>;
    if (!p.size || !p.scaling) throw new AppError('bad_backbone', `${file} must give at least "size" and "scaling".`);
    return { cropFraction: 0.875, trainCrop: 'random-resized-crop', channels: 3, ...p } as Preprocessing;
  }
  const size = inputSizeOf(modelJson) ?? 224;
  notes.push(`No preprocessing.json in ${dir}: using ${size} px input and [-1, 1] scaling (MobileNet style). Add a preprocessing.json if the model expects something else.`);
  return { size, cropFraction: 0.875, trainCrop: 'random-resized-crop', scaling: MINUS_ONE_TO_ONE, channels: 3 };
}

/** Locate a backbone by id or folder; downloads into the cache when it must and can. */
export async function locateBackbone(idOrPath: string, opts: { cacheDir: string; mirrors: string[] }): Promise<LocatedBackbone> {
  const entry = findBackbone(idOrPath);
  if (entry) {
    const r = await resolveModelFolder(entry.relDir, { cacheDir: opts.cacheDir, mirrors: opts.mirrors, canonicalBase: entry.canonicalBase, sha256: entry.sha256 });
    return { id: entry.id, modelJson: r.modelJson, preprocessing: entry.preprocessing, source: r.source, notes: [] };
  }
  const looksLikePath = idOrPath.includes('/') || idOrPath.includes('\\') || idOrPath.startsWith('.');
  if (!looksLikePath) {
    throw new AppError('unknown_backbone', `Unknown backbone "${idOrPath}". Expected one of: ${BACKBONES.map((b) => b.id).join(', ')}, or a folder holding a Keras LayersModel model.json.`);
  }
  const abs = path.resolve(idOrPath);
  const modelJson = abs.endsWith('.json') ? abs : path.join(abs, 'model.json');
  if (!fs.existsSync(modelJson)) {
    throw new AppError('unknown_backbone', `No model.json at ${modelJson}. A custom backbone is a folder with a tfjs LayersModel (model.json + weight files), e.g. from tensorflowjs_converter --input_format keras.`);
  }
  const notes: string[] = [];
  const preprocessing = userFolderPreprocessing(path.dirname(modelJson), modelJson, notes);
  return { id: path.basename(path.dirname(modelJson)), modelJson, preprocessing, source: path.dirname(modelJson), notes };
}
