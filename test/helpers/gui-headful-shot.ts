/**
 * Child process for the headful screenshot: opens `url` in a headful Chromium (the caller
 * provides a display, e.g. through xvfb-run) and saves the whole window to `file`.
 * Usage: node --import tsx test/helpers/gui-headful-shot.ts URL FILE
 */
import fs from 'node:fs';
import path from 'node:path';
import { launchBrowser } from './serve';

const [url, file] = process.argv.slice(2);
if (!url || !file) {
  console.error('usage: gui-headful-shot.ts URL FILE');
  process.exit(2);
}
const browser = await launchBrowser(false);
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(url);
  await page.locator('h1').waitFor({ timeout: 30_000 });
  await page.getByTestId('doctor').waitFor({ timeout: 30_000 });
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await page.screenshot({ path: file });
  console.log(`saved ${file}`);
} finally {
  await browser.close();
}
