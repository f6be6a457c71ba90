/**
 * The backbones the app knows by id. Each resolves by relative path through the models
 * mirrors (see resolve.ts) and carries its preprocessing. A user folder holding any Keras
 * LayersModel works too: pass its path as the model id.
 */
import type { Preprocessing } from '../../../shared/preprocessing';
import { MINUS_ONE_TO_ONE } from '../../../shared/preprocessing';

export const GOOGLE_STORAGE = 'https://storage.googleapis.com/';

export interface BackboneEntry {
  id: string;
  title: string;
  /** Folder relative to a models base, holding model.json. */
  relDir: string;
  canonicalBase?: string;
  preprocessing: Preprocessing;
  params: number;
  sizeMB: number;
  speedHint: string;
  /** Known SHA-256 of files, for download verification. */
  sha256?: Record<string, string>;
}

function mobilenetV2(alpha: string, params: number, sizeMB: number, speedHint: string): BackboneEntry {
  return {
    id: `mobilenet_v2_${alpha}_224`,
    title: `MobileNetV2 alpha ${alpha}, 224 px (ImageNet)`,
    relDir: `teachable-machine-models/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_${alpha}_224_no_top`,
    canonicalBase: GOOGLE_STORAGE,
    preprocessing: { size: 224, cropFraction: 0.875, trainCrop: 'random-resized-crop', scaling: MINUS_ONE_TO_ONE, channels: 3 },
    params,
    sizeMB,
    speedHint,
  };
}

export const BACKBONES: BackboneEntry[] = [
  mobilenetV2('0.35', 410_208, 1.7, 'fastest; good default on CPU'),
  mobilenetV2('0.5', 706_224, 2.8, 'fast'),
  mobilenetV2('0.75', 1_382_064, 5.5, 'medium'),
  mobilenetV2('1.0', 2_257_984, 9.0, 'slowest; most accurate; full fine-tuning needs micro-batches on wasm'),
];

export const DEFAULT_BACKBONE = 'mobilenet_v2_0.35_224';

export function findBackbone(id: string): BackboneEntry | undefined {
  return BACKBONES.find((b) => b.id === id);
}
