/** Evaluation, export (with its parity check) and prediction, run inside the engine worker. */
import fs from 'node:fs';
import { AppError } from '../../../shared/errors';
import { loadClassifier, type Classifier } from '../../engine/classifier';
import { classificationReport } from '../../engine/metrics';
import { headKerasLayers } from '../../engine/heads';
import { writeExport, loadExport, predictWithExport, compareParity } from '../../engine/export';
import { loadImageForEval, loadImageBufferForEval } from '../../dataset/image-source';
import type { ImageSource } from '../../engine/data';
import type { JobIO } from './protocol';
import type { ClassifierJobBase, EvalJobPayload, ExportJobPayload, PredictJobPayload } from './train-job-types';
import { openSplit } from './data-access';

const CHUNK = 64;

function open(p: ClassifierJobBase): Promise<Classifier> {
  return loadClassifier({ modelJson: p.backbone.modelJson, backboneId: p.backbone.id, preprocessing: p.backbone.preprocessing, checkpointDir: p.checkpointDir });
}

/** Predict a whole split in chunks (bounded memory), reporting progress. */
async function predictSource(clf: Classifier, src: ImageSource, io: JobIO, tta: 'none' | 'flip', phase: string): Promise<Float32Array> {
  const c = clf.classNames.length;
  const probs = new Float32Array(src.length * c);
  for (let i = 0; i < src.length; i += CHUNK) {
    if (io.signal.aborted) throw new AppError('cancelled', `The ${phase} was cancelled.`);
    const idx = Array.from({ length: Math.min(CHUNK, src.length - i) }, (_, k) => i + k);
    const pixels = await src.load(idx, { epoch: 0, augment: false });
    probs.set(clf.predict(pixels, idx.length, { tta }), i * c);
    io.emit('phase', { phase, done: i + idx.length, total: src.length });
  }
  return probs;
}

export async function evaluateJob(p: EvalJobPayload, io: JobIO) {
  const started = performance.now();
  const clf = await open(p);
  try {
    const src = await openSplit(p.data, p.split, p.backbone.preprocessing);
    if (src.classNames.join('\0') !== clf.classNames.join('\0')) {
      throw new AppError('class_mismatch', `The run was trained on classes ${clf.classNames.join(', ')} but this split has ${src.classNames.join(', ')}.`);
    }
    const probs = await predictSource(clf, src, io, p.tta, 'evaluating');
    const r = classificationReport(probs, src.labels, clf.classNames, 24);
    return {
      ...r,
      classNames: clf.classNames,
      topLosses: r.topLosses.map((t) => ({ path: src.paths[t.index], trueClass: clf.classNames[t.trueClass], predicted: clf.classNames[t.predicted], confidence: t.confidence, loss: t.loss })),
      tta: p.tta,
      seconds: (performance.now() - started) / 1000,
      images: src.length,
    };
  } finally {
    clf.dispose();
  }
}

export async function exportJob(p: ExportJobPayload, io: JobIO) {
  const clf = await open(p);
  try {
    const weights = clf.net.getWeights();
    const head = headKerasLayers(clf.head);
    const files = await writeExport({
      outDir: p.outDir,
      modelTopology: clf.net.modelTopology() as Record<string, unknown>,
      backboneWeights: weights,
      head,
      classNames: clf.classNames,
      preprocessing: clf.preprocessing,
      meta: p.meta,
    });
    for (const t of weights.values()) t.dispose();
    for (const l of head) for (const w of l.weights) w.tensor.dispose();
    // Parity: the validation images through the app, and through the export loaded back
    // the way a user would, each with its own preprocessing from disk.
    const src = await openSplit(p.data, 'val', p.backbone.preprocessing);
    const appProbs = await predictSource(clf, src, io, 'none', 'parity: app');
    const exp = await loadExport(p.outDir);
    try {
      const size = exp.preprocessing.size;
      const per = size * size * 3;
      const pixels = new Uint8Array(src.length * per);
      for (let i = 0; i < src.length; i++) {
        pixels.set(await loadImageForEval(src.paths[i], exp.preprocessing), i * per);
        if (i % 16 === 0) io.emit('phase', { phase: 'parity: export', done: i, total: src.length });
      }
      const expProbs = predictWithExport(exp, pixels, src.length);
      const parity = compareParity(appProbs, expProbs, clf.classNames.length);
      fs.writeFileSync(`${p.outDir}/parity.json`, JSON.stringify(parity, null, 2));
      return { dir: p.outDir, files: [...files, 'parity.json'].sort(), parity };
    } finally {
      exp.model.dispose();
    }
  } finally {
    clf.dispose();
  }
}

export async function predictJob(p: PredictJobPayload, io: JobIO) {
  if (!p.images.length) throw new AppError('no_images', 'Give at least one image to predict.');
  let labels: string[];
  let preprocessing;
  let run: (pixels: Uint8Array, n: number) => Float32Array;
  let cleanup: () => void;
  if (p.exportDir) {
    const exp = await loadExport(p.exportDir);
    labels = exp.labels;
    preprocessing = exp.preprocessing;
    run = (px, n) => predictWithExport(exp, px, n);
    cleanup = () => exp.model.dispose();
  } else if (p.classifier) {
    const clf = await open(p.classifier);
    labels = clf.classNames;
    preprocessing = clf.preprocessing;
    run = (px, n) => clf.predict(px, n);
    cleanup = () => clf.dispose();
  } else throw new AppError('bad_arguments', 'Predict needs a run (its best checkpoint) or an export folder.');
  try {
    const out = [];
    for (let i = 0; i < p.images.length; i++) {
      const img = p.images[i];
      let pixels: Uint8Array;
      try {
        pixels = img.path ? await loadImageForEval(img.path, preprocessing) : await loadImageBufferForEval(Buffer.from(img.base64 ?? '', 'base64'), preprocessing);
      } catch (err) {
        throw new AppError('bad_image', `Cannot read image "${img.name}": ${(err as Error).message}. Use a JPEG, PNG, WebP, GIF, TIFF or AVIF file.`);
      }
      const probs = run(pixels, 1);
      const ranked = labels.map((label, j) => ({ label, p: probs[j] })).sort((a, b) => b.p - a.p);
      out.push({ name: img.name, top: ranked[0].label, confidence: ranked[0].p, probabilities: ranked });
      io.emit('phase', { phase: 'predicting', done: i + 1, total: p.images.length });
    }
    return out;
  } finally {
    cleanup();
  }
}
