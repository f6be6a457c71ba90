/**
 * Where the home folder and the models mirrors come from: an explicit option, then the
 * environment (FINETUNE_HOME, FINETUNE_MODELS_MIRROR), then the OS default.
 */
import os from 'node:os';
import path from 'node:path';

export const APP_ID = 'finetune-studio';

/** The OS's per-user app-data folder for this app. */
export function defaultHome(platform = process.platform, env = process.env): string {
  if (platform === 'win32') return path.join(env.APPDATA ?? path.join(os.homedir(), 'AppData', 'Roaming'), 'Finetune Studio');
  if (platform === 'darwin') return path.join(os.homedir(), 'Library', 'Application Support', 'Finetune Studio');
  return path.join(env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share'), APP_ID);
}

export function resolveHome(option: string | undefined, env = process.env): string {
  return path.resolve(option || env.FINETUNE_HOME || defaultHome(process.platform, env));
}

/**
 * Mirrors: the option may be given several times; the environment variable takes a list
 * separated by commas or semicolons. Folders become absolute; URLs end with a slash.
 */
export function resolveMirrors(options: string[] | undefined, env = process.env): string[] {
  const raw = options && options.length ? options : (env.FINETUNE_MODELS_MIRROR ?? '').split(/[,;]/);
  return raw
    .map((m) => m.trim())
    .filter(Boolean)
    .map((m) => (/^https?:\/\//i.test(m) ? m.replace(/\/?$/, '/') : path.resolve(m)));
}
