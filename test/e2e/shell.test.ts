import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { startServe, launchBrowser, screenshotDir, type Served } from '../helpers/serve';

let served: Served;
let browser: Browser;

before(async () => {
  served = await startServe();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await served?.stop();
});

function rawRequest(url: string, init: { method?: string; headers?: Record<string, string>; body?: string }): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: init.method ?? 'GET', headers: init.headers }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

test('the shell loads in Chromium and shows doctor information from the engine', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(served.url);
  await page.getByTestId('doctor').waitFor({ timeout: 30_000 });
  assert.equal(await page.getByTestId('backend').textContent(), 'wasm');
  assert.match((await page.getByTestId('doctor').textContent()) ?? '', /SQLite\s*3\.\d+/);
  assert.ok((await page.locator('h1').textContent())?.includes('Finetune Studio'));
  fs.mkdirSync(screenshotDir, { recursive: true });
  const shot = path.join(screenshotDir, 'shell-doctor.png');
  await page.screenshot({ path: shot });
  assert.ok(fs.statSync(shot).size > 10_000, 'screenshot has content');
  assert.deepEqual(errors, []);
  // The page got the token from the URL and then works by cookie: reload without it.
  await page.goto(served.origin + '/');
  await page.getByTestId('doctor').waitFor({ timeout: 30_000 });
  await page.close();
});

test('requests without the token are refused', async () => {
  const api = `${served.origin}/api/invoke/app:doctor`;
  assert.equal(await rawRequest(api, { method: 'POST', body: '{}' }), 401);
  assert.equal(await rawRequest(api, { method: 'POST', body: '{}', headers: { authorization: 'Bearer wrong' } }), 401);
  assert.equal(await rawRequest(served.origin + '/', {}), 401);
  assert.equal(await rawRequest(api, { method: 'POST', body: '{}', headers: { authorization: `Bearer ${served.token}` } }), 200);
});

test('a foreign Origin or Host (DNS rebinding) is refused even with the token', async () => {
  const api = `${served.origin}/api/invoke/app:doctor`;
  const auth = { authorization: `Bearer ${served.token}` };
  assert.equal(await rawRequest(api, { method: 'POST', body: '{}', headers: { ...auth, origin: 'http://evil.example' } }), 403);
  const port = new URL(served.origin).port;
  assert.equal(await rawRequest(api, { method: 'POST', body: '{}', headers: { ...auth, host: `evil.example:${port}` } }), 403);
  assert.equal(await rawRequest(api, { method: 'POST', body: '{}', headers: { ...auth, origin: served.origin } }), 200);
});

test('a page on another origin cannot call the API from the browser', async () => {
  const page = await browser.newPage();
  await page.goto('about:blank');
  const status = await page.evaluate(async (u) => {
    try {
      const r = await fetch(u, { method: 'POST', body: '{}', credentials: 'include' });
      return r.status;
    } catch {
      return -1; // blocked by CORS: also a refusal
    }
  }, `${served.origin}/api/invoke/app:doctor`);
  assert.ok(status === 401 || status === 403 || status === -1, `got ${status}`);
  await page.close();
});

test('invalid arguments come back as a readable error envelope', async () => {
  const res = await fetch(`${served.origin}/api/invoke/app:doctor`, { method: 'POST', body: '{"x":1}', headers: { authorization: `Bearer ${served.token}` } });
  const body = await res.json();
  assert.equal(body.ok, false);
  assert.equal(body.error.code, 'bad_arguments');
});
