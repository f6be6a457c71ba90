import { test } from 'node:test';
import assert from 'node:assert/strict';
import { invokeVerb, isVerb } from '../../../src/main/services/gate';
import { AppError } from '../../../src/shared/errors';
import type { Api } from '../../../src/shared/contract';

// A fake Api: only the verbs these tests call; the gate must not care how they're made.
function fakeApi(overrides: Partial<Record<string, (a: unknown) => Promise<unknown>>>): Api {
  return overrides as unknown as Api;
}

test('unknown verbs are refused with the list of known ones', async () => {
  const r = await invokeVerb(fakeApi({}), 'app:doctr', {});
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.equal(r.error.code, 'unknown_verb');
    assert.match(r.error.message, /Unknown verb "app:doctr"\. Expected one of: .*app:doctor/);
  }
  assert.equal(isVerb('__proto__'), false);
  assert.equal(isVerb('constructor'), false);
});

test('arguments are validated before the service runs', async () => {
  let called = false;
  const api = fakeApi({ 'app:doctor': async () => ((called = true), {}) });
  const r = await invokeVerb(api, 'app:doctor', { unexpected: 1 });
  assert.equal(r.ok, false);
  assert.equal(called, false);
  if (!r.ok) {
    assert.equal(r.error.code, 'bad_arguments');
    assert.match(r.error.message, /Invalid arguments for app:doctor/);
  }
});

test('a service value comes back as { ok: true, value }', async () => {
  const api = fakeApi({ 'app:doctor': async () => ({ hello: 'world' }) });
  assert.deepEqual(await invokeVerb(api, 'app:doctor', {}), { ok: true, value: { hello: 'world' } });
  assert.deepEqual(await invokeVerb(api, 'app:doctor', undefined), { ok: true, value: { hello: 'world' } });
});

test('thrown errors become { ok: false, error: { code, message } }', async () => {
  const api = fakeApi({
    'app:doctor': async () => {
      throw new AppError('no_backend', 'No backend. Install tfjs.');
    },
    'models:list': async () => {
      throw new TypeError('boom');
    },
  });
  assert.deepEqual(await invokeVerb(api, 'app:doctor', {}), { ok: false, error: { code: 'no_backend', message: 'No backend. Install tfjs.' } });
  assert.deepEqual(await invokeVerb(api, 'models:list', {}), { ok: false, error: { code: 'internal', message: 'boom' } });
});

test('app:pickFolder is refused with advice outside the desktop app, and uses the shell picker inside it', async () => {
  const { createAppServices } = await import('../../../src/main/services/app');
  const { appPaths } = await import('../../../src/main/services/context');
  const { EventHub } = await import('../../../src/main/services/events');
  const base = { paths: appPaths('/tmp/unused-home'), mirrors: [], events: new EventHub(), appVersion: '0', electronVersion: null };
  const cli = createAppServices(base);
  await assert.rejects(cli['app:pickFolder']({}), /needs the desktop app\. Type or paste the folder path/);
  const desktop = createAppServices({ ...base, pickFolder: async (title?: string) => `/picked/${title ?? 'default'}` });
  assert.deepEqual(await desktop['app:pickFolder']({ title: 'x' }), { path: '/picked/x' });
});
