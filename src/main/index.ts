/**
 * Electron main process: boot, register IPC, open the window. Thin on purpose: every verb
 * lives in services/, which the CLI and `serve` share.
 */
import { app, BrowserWindow, dialog, ipcMain, shell, session } from 'electron';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { boot, type Booted } from './boot';
import { registerIpc } from './ipc';
import { contentSecurityPolicy } from './server/static';
import { EVENT_CHANNEL } from '../shared/contract';

const here = path.dirname(fileURLToPath(import.meta.url));

function createWindow(): BrowserWindow {
  const win = new BrowserWindow({
    width: 1280,
    height: 860,
    minWidth: 1024,
    minHeight: 700,
    show: false,
    title: 'Finetune Studio',
    webPreferences: {
      preload: path.join(here, '../preload/index.cjs'),
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      webSecurity: true,
    },
  });
  win.once('ready-to-show', () => win.show());
  // No navigation away from the app and no new windows; external links open in the browser.
  win.webContents.on('will-navigate', (e, url) => {
    if (url !== win.webContents.getURL()) e.preventDefault();
  });
  win.webContents.setWindowOpenHandler(({ url }) => {
    if (/^https:\/\//.test(url)) void shell.openExternal(url);
    return { action: 'deny' };
  });
  const devUrl = process.env.ELECTRON_RENDERER_URL;
  if (devUrl) void win.loadURL(devUrl);
  else void win.loadFile(path.join(here, '../renderer/index.html'));
  return win;
}

async function onReady(): Promise<void> {
  session.defaultSession.webRequest.onHeadersReceived((details, callback) => {
    callback({ responseHeaders: { ...details.responseHeaders, 'Content-Security-Policy': [contentSecurityPolicy()] } });
  });
  let win: BrowserWindow | null = null;
  const pickFolder = async (title?: string) => {
    const options: Electron.OpenDialogOptions = { title: title ?? 'Choose an image folder', properties: ['openDirectory'] };
    const r = win ? await dialog.showOpenDialog(win, options) : await dialog.showOpenDialog(options);
    return r.canceled || !r.filePaths[0] ? null : r.filePaths[0];
  };
  const booted: Booted = await boot({ electronVersion: process.versions.electron, pickFolder });
  win = createWindow();
  const mainWindow = win;
  registerIpc(ipcMain, booted.api, (webContents) => webContents === mainWindow.webContents);
  booted.ctx.events.subscribe((envelope) => {
    if (!mainWindow.isDestroyed()) mainWindow.webContents.send(EVENT_CHANNEL, envelope);
  });
  app.on('before-quit', () => void booted.close());
}

app.on('web-contents-created', (_e, contents) => {
  contents.on('will-attach-webview', (e) => e.preventDefault());
});
app.whenReady().then(onReady, (err) => {
  console.error(err);
  app.quit();
});
app.on('window-all-closed', () => app.quit());
