/** Serves the built renderer with the same strict CSP as the desktop window. */
import fs from 'node:fs';
import path from 'node:path';
import type http from 'node:http';
import type { GuardConfig } from './guard';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};

/** The page's Content-Security-Policy: only our own scripts; images may be data: URLs. */
export function contentSecurityPolicy(connect = "'self'"): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    `connect-src ${connect}`,
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "form-action 'none'",
  ].join('; ');
}

export function serveStatic(root: string, pathname: string, res: http.ServerResponse, guard: GuardConfig): void {
  const rel = decodeURIComponent(pathname).replace(/^\/+/, '') || 'index.html';
  const file = path.resolve(root, rel);
  if (!file.startsWith(path.resolve(root) + path.sep)) {
    res.writeHead(404).end();
    return;
  }
  let target = file;
  if (!fs.existsSync(target) || fs.statSync(target).isDirectory()) {
    // Single-page app: unknown paths get index.html; missing build gets a clear message.
    target = path.join(root, 'index.html');
    if (!fs.existsSync(target)) {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`The UI is not built (${target} is missing). Run \`npm run build\` first.`);
      return;
    }
  }
  const ws = `ws://127.0.0.1:${guard.port} ws://localhost:${guard.port}`;
  res.writeHead(200, {
    'content-type': TYPES[path.extname(target)] ?? 'application/octet-stream',
    'content-security-policy': contentSecurityPolicy(`'self' ${ws}`),
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-cache',
  });
  fs.createReadStream(target).pipe(res);
}
