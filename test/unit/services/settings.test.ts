import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { defaultHome, resolveHome, resolveMirrors } from '../../../src/main/services/settings';

test('home: option, then FINETUNE_HOME, then the OS app-data folder', () => {
  assert.equal(resolveHome('/x/home', { FINETUNE_HOME: '/y' }), path.resolve('/x/home'));
  assert.equal(resolveHome(undefined, { FINETUNE_HOME: '/y' }), path.resolve('/y'));
  assert.equal(resolveHome(undefined, { XDG_DATA_HOME: '/data' }), path.resolve('/data/finetune-studio'));
  assert.match(defaultHome('darwin', {}), /Library\/Application Support\/Finetune Studio$/);
  assert.match(defaultHome('win32', { APPDATA: 'C:\\Users\\u\\AppData\\Roaming' }), /Finetune Studio$/);
});

test('mirrors: options win over the environment; folders become absolute, URLs end in /', () => {
  assert.deepEqual(resolveMirrors(['rel/models', 'https://example.org/m'], {}), [path.resolve('rel/models'), 'https://example.org/m/']);
  assert.deepEqual(resolveMirrors([], { FINETUNE_MODELS_MIRROR: '/a, http://h:8080/b' }), ['/a', 'http://h:8080/b/']);
  assert.deepEqual(resolveMirrors(undefined, {}), []);
});
