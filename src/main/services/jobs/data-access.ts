/** Open the image sources of a snapshot for a job, with the backbone's preprocessing. */
import { AppError } from '../../../shared/errors';
import type { Preprocessing } from '../../../shared/preprocessing';
import { loadSnapshot, openImageSource, type AugmentConfig } from '../../dataset/image-source';
import type { ImageSource } from '../../engine/data';
import type { DataRef } from './train-job-types';

/** The augmentation the `augment: true` switch turns on (the tutorials' recipe). */
export const DEFAULT_AUGMENT: AugmentConfig = {
  randomResizedCrop: { scale: [0.6, 1], ratio: [3 / 4, 4 / 3] },
  hflip: true,
};

export async function openSplit(data: DataRef, split: 'train' | 'val' | 'test', preprocessing: Preprocessing, opts: { augment?: AugmentConfig; seed?: number } = {}): Promise<ImageSource> {
  const snapshot = loadSnapshot(data.datasetsDir, data.snapshotId);
  const source = await openImageSource({ snapshot, split, preprocessing, cacheDir: data.decodeCacheDir, augment: opts.augment, seed: opts.seed });
  if (source.length === 0) {
    throw new AppError('empty_split', `The ${split} split of dataset ${data.snapshotId} has no images. Re-import with a ${split === 'test' ? '--test' : '--val'} fraction above 0, or add a ${split} folder.`);
  }
  return source as unknown as ImageSource;
}
