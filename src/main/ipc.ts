/**
 * The one `handle()` gate for Electron IPC: only our own window may call, the verb must
 * exist and its arguments must parse (services/gate.ts); results are always envelopes.
 */
import type { IpcMain, WebContents } from 'electron';
import { INVOKE_CHANNEL, type Api } from '../shared/contract';
import { invokeVerb } from './services/gate';

export function registerIpc(ipcMain: IpcMain, api: Api, isTrustedSender: (w: WebContents) => boolean): void {
  ipcMain.handle(INVOKE_CHANNEL, async (event, verb: unknown, args: unknown) => {
    const frameUrl = event.senderFrame?.url ?? '';
    if (!isTrustedSender(event.sender) || !(frameUrl.startsWith('file://') || frameUrl.startsWith(process.env.ELECTRON_RENDERER_URL ?? '\0'))) {
      return { ok: false, error: { code: 'forbidden', message: 'This window may not call the app.' } };
    }
    return invokeVerb(api, verb, args);
  });
}
