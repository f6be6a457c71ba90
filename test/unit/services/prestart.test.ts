import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dropSpareWorker, prestartWorker, spareThreadId, startJob } from '../../../src/main/services/jobs/worker-host';

test('a prestarted engine worker runs the next job; a second job gets a fresh worker; a spare nobody takes is dropped', async () => {
  prestartWorker();
  const spare = spareThreadId();
  assert.ok(spare !== null);
  prestartWorker();
  assert.equal(spareThreadId(), spare, 'one spare at a time');
  const first = startJob('predict', { images: [] }, () => {});
  assert.equal(first.threadId, spare);
  assert.equal(spareThreadId(), null);
  await assert.rejects(first.done, (e: Error & { code?: string }) => e.code === 'no_images');
  const second = startJob('predict', { images: [] }, () => {});
  assert.notEqual(second.threadId, spare);
  await assert.rejects(second.done, (e: Error & { code?: string }) => e.code === 'no_images');
  prestartWorker();
  await dropSpareWorker();
  assert.equal(spareThreadId(), null);
});
