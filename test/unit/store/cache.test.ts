import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openStore, type Store } from '../../../src/main/store';
import { freshStore } from './helpers';

function manyRuns(store: Store, n: number): string[] {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = store.createRun({ config: { i }, snapshotId: 's', backbone: 'b', backend: 'wasm', seed: i, strategy: 'head', experiment: i % 2 ? 'odd' : 'even' }).id;
    store.logMetrics(id, [{ key: 'val_accuracy', step: 0, epoch: 0, value: (i % 100) / 200 }]);
    store.setStatus(id, 'finished');
    ids.push(id);
  }
  return ids;
}

const plain = (x: unknown) => JSON.parse(JSON.stringify(x));

test('a warm list cache follows writes made by another connection, and matches a cold read', () => {
  const { store: a, file } = freshStore();
  const ids = manyRuns(a, 1100);
  const first = a.listRuns({ sort: 'val_accuracy', limit: 5000 });
  assert.equal(first.length, 1100);
  assert.ok(Object.isFrozen(first[0]) && Object.isFrozen(first[0].metrics), 'shared summaries are frozen');

  const b = openStore(file, { appVersion: '0.1.0-test' });
  b.tag(ids[5], 'picked');
  b.note(ids[6], 'a note');
  b.setStatus(ids[7], 'failed', { error: 'boom' });
  b.logMetrics(ids[8], [{ key: 'val_accuracy', step: 1, epoch: 1, value: 0.99 }]);
  b.deleteRun(ids[9]);
  b.untag(ids[5], 'nothing');
  const fresh = b.createRun({ config: {}, snapshotId: 's', backbone: 'b', backend: 'wasm', seed: 1, strategy: 'head' }).id;

  const after = a.listRuns({ sort: 'val_accuracy', limit: 5000 });
  assert.equal(after.length, 1100);
  assert.equal(after[0].id, ids[8], 'the new best is first');
  assert.equal(after[0].metrics.val_accuracy.best, 0.99);
  assert.equal(after[0].lastEpoch, 1);
  const byId = new Map(after.map((r) => [r.id, r]));
  assert.deepEqual(byId.get(ids[5])!.tags, ['picked']);
  assert.equal(byId.get(ids[6])!.notes, 'a note');
  assert.equal(byId.get(ids[7])!.status, 'failed');
  assert.equal(byId.get(ids[7])!.error, 'boom');
  assert.equal(byId.has(ids[9]), false);
  assert.equal(after[after.length - 1].id, fresh, 'a run without the metric sorts last');
  assert.equal(a.getRun(ids[6]).notes, 'a note');
  assert.deepEqual(a.listRuns({ tag: 'picked' }).map((r) => r.id), [ids[5]]);

  // A new connection reads the same rows straight from SQL (cold, small lists) or builds its own cache.
  const c = openStore(file, { appVersion: '0.1.0-test' });
  assert.deepEqual(plain(c.listRuns({ experiment: 'odd', limit: 20 })), plain(a.listRuns({ experiment: 'odd', limit: 20 })));
  assert.deepEqual(plain(c.listRuns({ sort: 'val_accuracy', limit: 5000 })), plain(after));
  for (const s of [a, b, c]) s.close();
});
