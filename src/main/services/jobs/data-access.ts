/** Open the image sources of a snapshot for a job, with the backbone's preprocessing. */
import { AppError } from '../../../shared/errors';
import type { Preprocessing } from '../../../shared/preprocessing';
import { loadSnapshot, openImageSource, type AugmentConfig, type DatasetSnapshot, type PixelThread } from '../../dataset/image-source';
import type { ImageSource } from '../../engine/data';
import type { DataRef } from './train-job-types';

export { DEFAULT_AUGMENT } from '../../dataset/augment';

/** One job reads one snapshot file, however many splits it opens. */
const snapshots = new Map<string, DatasetSnapshot>();

export async function openSplit(data: DataRef, split: 'train' | 'val' | 'test', preprocessing: Preprocessing, opts: { augment?: AugmentConfig; seed?: number; thread?: PixelThread } = {}): Promise<ImageSource> {
  let snapshot = snapshots.get(data.snapshotId);
  if (!snapshot) snapshots.set(data.snapshotId, (snapshot = loadSnapshot(data.datasetsDir, data.snapshotId)));
  const source = await openImageSource({ snapshot, split, preprocessing, cacheDir: data.decodeCacheDir, augment: opts.augment, seed: opts.seed, thread: opts.thread });
  if (source.length === 0) {
    throw new AppError('empty_split', `The ${split} split of dataset ${data.snapshotId} has no images. Re-import with a ${split === 'test' ? '--test' : '--val'} fraction above 0, or add a ${split} folder.`);
  }
  return source;
}
