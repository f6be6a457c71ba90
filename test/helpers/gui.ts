/**
 * Helpers for the GUI end-to-end tests: screenshots checked for real content, waiting on
 * values the page exposes, and one headful screenshot under Xvfb.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import type { Page } from 'playwright-core';
import { repoRoot } from './paths';
import { screenshotDir } from './serve';

/**
 * Save a screenshot of the page and assert it is not blank: a real PNG of some size whose
 * pixels are not all one colour (a crashed Svelte app renders an empty, uniform page).
 */
export async function screenshotWithContent(page: Page, name: string, opts: { fullPage?: boolean } = {}): Promise<string> {
  fs.mkdirSync(screenshotDir, { recursive: true });
  const file = path.join(screenshotDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: opts.fullPage ?? false });
  await assertNotBlank(file);
  return file;
}

/** Fails unless `file` is a PNG with visible structure (several distinct colours, some contrast). */
export async function assertNotBlank(file: string): Promise<void> {
  const size = fs.statSync(file).size;
  assert.ok(size > 8_000, `${path.basename(file)} is only ${size} bytes`);
  const img = sharp(file);
  const meta = await img.metadata();
  assert.equal(meta.format, 'png', `${path.basename(file)} is not a PNG`);
  const stats = await img.stats();
  const spread = Math.max(...stats.channels.slice(0, 3).map((c) => c.max - c.min));
  assert.ok(spread > 60, `${path.basename(file)} looks blank (colour range ${spread})`);
  // A page with text and panels has many distinct colours after anti-aliasing; a blank one has one or two.
  const { data } = await img.clone().resize(320, 200, { fit: 'fill' }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const colours = new Set<number>();
  for (let i = 0; i < data.length; i += 3) colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
  assert.ok(colours.size > 20, `${path.basename(file)} has only ${colours.size} distinct colours`);
}

/** Poll a page value until `ok` accepts it (the tests never assert on time, only on outcomes). */
export async function waitForValue<T>(read: () => Promise<T>, ok: (v: T) => boolean, what: string, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T = await read();
  while (!ok(last)) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}; last value: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 250));
    last = await read();
  }
  return last;
}

/** Read a numeric data-* attribute of a test id (charts expose data-points / data-markers). */
export async function numericAttr(page: Page, testid: string, attr: string): Promise<number> {
  const v = await page.getByTestId(testid).first().getAttribute(attr);
  return Number(v ?? 0);
}

/**
 * One screenshot of the whole window with a headful Chromium: in this process when a display
 * exists, otherwise in a child under `xvfb-run`. Returns null (with the reason) when neither works.
 */
export async function headfulScreenshot(url: string, file: string): Promise<{ file: string } | { skipped: string }> {
  const script = path.join(repoRoot, 'test/helpers/gui-headful-shot.ts');
  const args = ['--import', 'tsx', script, url, file];
  const useXvfb = !process.env.DISPLAY;
  if (useXvfb && !fs.existsSync('/usr/bin/xvfb-run')) return { skipped: 'no DISPLAY and no xvfb-run (apt-get install -y xvfb)' };
  const cmd = useXvfb ? 'xvfb-run' : process.execPath;
  const cmdArgs = useXvfb ? ['-a', '-s', '-screen 0 1280x800x24', process.execPath, ...args] : args;
  const out = await new Promise<{ code: number | null; text: string }>((resolve) => {
    const child = spawn(cmd, cmdArgs, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (d) => (text += d));
    child.stderr.on('data', (d) => (text += d));
    child.on('exit', (code) => resolve({ code, text }));
  });
  if (out.code !== 0) throw new Error(`headful screenshot failed (exit ${out.code}):\n${out.text}`);
  return { file };
}

/**
 * Wait until `testid` is visible, failing early (with the page's message) when one of the
 * error banners `errorIds` shows instead: a failed verb reads better than a timeout.
 */
export async function waitForOrError(page: Page, testid: string, errorIds: string[], timeoutMs: number): Promise<void> {
  const selector = [testid, ...errorIds].map((id) => `[data-testid="${id}"]`).join(', ');
  await page.locator(selector).first().waitFor({ timeout: timeoutMs });
  for (const id of errorIds) {
    const banner = page.getByTestId(id);
    if (await banner.count()) throw new Error(`waiting for ${testid}, the page showed an error: ${(await banner.first().textContent())?.trim()}`);
  }
}
